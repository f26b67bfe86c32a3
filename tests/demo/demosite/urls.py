from django.urls import path

from blog import views

urlpatterns = [
    path("", views.index),
    path("health", views.health),
]
# One URL per page and variant: /<page>/nplus1 and /<page>/fixed.
for _page, (_nplus1, _fixed) in views.PAGES.items():
    urlpatterns += [path("%s/nplus1" % _page, _nplus1),
                    path("%s/fixed" % _page, _fixed)]
