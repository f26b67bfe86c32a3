#include "flame.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "escape.h"

#define SQL_LABEL_MAX 160

struct node {
	char *label;
	uint64_t weight;	/* this node and everything under it */
	unsigned rank;		/* leaf of finding #rank, 0: none */
	bool leaf;
	struct node **kids;
	size_t nkids, cap;
};

struct flame {
	struct node root;
};

struct flame *flame__new(void)
{
	return calloc(1, sizeof(struct flame));
}

static void node_free(struct node *n)
{
	for (size_t i = 0; i < n->nkids; i++) {
		node_free(n->kids[i]);
		free(n->kids[i]);
	}
	free(n->kids);
	free(n->label);
}

void flame__free(struct flame *f)
{
	if (!f)
		return;
	node_free(&f->root);
	free(f);
}

/* The part of a path that says where a file is: after site-packages/,
 * dist-packages/ or lib/pythonX.Y/, else the whole path. */
static const char *short_path(const char *file)
{
	static const char *const marks[] = { "site-packages/", "dist-packages/" };
	const char *best = file, *p;

	for (size_t i = 0; i < sizeof(marks) / sizeof(marks[0]); i++)
		if ((p = strstr(file, marks[i])) && p + strlen(marks[i]) > best)
			best = p + strlen(marks[i]);
	if (best == file && (p = strstr(file, "/lib/python"))) {
		const char *slash = strchr(p + 11, '/');

		if (slash)
			best = slash + 1;
	}
	return best;
}

/* A label safe for the folded format: no ';', no line breaks, no NUL. */
static char *make_label(const char *prefix, const char *s, size_t n, const char *suffix)
{
	size_t plen = strlen(prefix), slen = strlen(suffix), o = 0;
	char *l = malloc(plen + n + slen + 1);
	bool space = false;

	if (!l)
		return NULL;
	memcpy(l, prefix, plen);
	o = plen;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (c == '\n' || c == '\r' || c == '\t' || c == ' ') {
			if (!space && o > plen)
				l[o++] = ' ';
			space = true;
			continue;
		}
		space = false;
		l[o++] = c == ';' ? ',' : c;
	}
	while (o > plen && l[o - 1] == ' ')
		o--;
	memcpy(l + o, suffix, slen);
	l[o + slen] = 0;
	return l;
}

static struct node *child(struct node *n, char *label, bool leaf, unsigned rank)
{
	struct node *k;

	for (size_t i = 0; i < n->nkids; i++)
		if (n->kids[i]->leaf == leaf && n->kids[i]->rank == rank &&
		    strcmp(n->kids[i]->label, label) == 0) {
			free(label);
			return n->kids[i];
		}
	if (n->nkids == n->cap) {
		size_t cap = n->cap ? n->cap * 2 : 4;
		struct node **kids = realloc(n->kids, cap * sizeof(*kids));

		if (!kids)
			goto oom;
		n->kids = kids;
		n->cap = cap;
	}
	k = calloc(1, sizeof(*k));
	if (!k)
		goto oom;
	k->label = label;
	k->leaf = leaf;
	k->rank = rank;
	n->kids[n->nkids++] = k;
	return k;
oom:
	free(label);
	return NULL;
}

int flame__add(struct flame *f, const struct pq_query *q, const char *sql,
	       size_t sql_len, uint64_t weight, unsigned rank)
{
	struct node *n = &f->root;
	char suffix[32] = "", *label;

	n->weight += weight;
	if (!q->nframes) {
		label = make_label("", "[no Python stack]", 17, "");
		if (!label || !(n = child(n, label, false, 0)))
			return -ENOMEM;
		n->weight += weight;
	}
	for (uint32_t i = q->nframes; i-- > 0;) {
		const struct pq_frame *fr = &q->stack[i];
		const char *file = short_path(fr->file ? fr->file : "?");
		const char *func = fr->func ? fr->func : "?";
		size_t len = strlen(func) + strlen(file) + 32;
		char *tmp = malloc(len);

		if (!tmp)
			return -ENOMEM;
		snprintf(tmp, len, "%s (%s:%" PRIu32 ")", func, file, fr->line);
		label = make_label("", tmp, strlen(tmp), "");
		free(tmp);
		if (!label || !(n = child(n, label, false, 0)))
			return -ENOMEM;
		n->weight += weight;
	}
	if (rank)
		snprintf(suffix, sizeof(suffix), " [finding #%u]", rank);
	if (sql_len > SQL_LABEL_MAX) {
		/* cut on a character boundary: the output stays valid UTF-8 */
		sql_len = SQL_LABEL_MAX;
		while (sql_len > 0 && ((unsigned char)sql[sql_len] & 0xc0) == 0x80)
			sql_len--;
	}
	label = make_label("SQL ", sql, sql_len, suffix);
	if (!label || !(n = child(n, label, true, rank)))
		return -ENOMEM;
	n->weight += weight;
	return 0;
}

/* --- folded -------------------------------------------------------------- */

struct path {
	const char **labels;
	size_t n, cap;
};

static void folded(const struct node *n, struct path *p, FILE *out)
{
	uint64_t below = 0;

	if (n->label) {
		if (p->n == p->cap) {
			size_t cap = p->cap ? p->cap * 2 : 64;
			const char **l = realloc(p->labels, cap * sizeof(*l));

			if (!l)
				return;
			p->labels = l;
			p->cap = cap;
		}
		p->labels[p->n++] = n->label;
	}
	for (size_t i = 0; i < n->nkids; i++) {
		folded(n->kids[i], p, out);
		below += n->kids[i]->weight;
	}
	/* weight that ends here (a leaf) is a line of its own */
	if (n->label && n->weight > below) {
		for (size_t i = 0; i < p->n; i++) {
			if (i)
				fputc(';', out);
			fputs(p->labels[i], out);
		}
		fprintf(out, " %" PRIu64 "\n", n->weight - below);
	}
	if (n->label)
		p->n--;
}

void flame__folded(const struct flame *f, FILE *out)
{
	struct path p = {0};

	folded(&f->root, &p, out);
	free(p.labels);
}

/* --- SVG ----------------------------------------------------------------- */

#define SVG_WIDTH 1200.0
#define FRAME_H 17
#define PAD_TOP 60
#define PAD_SIDE 10.0

static unsigned depth_of(const struct node *n)
{
	unsigned d = 0;

	for (size_t i = 0; i < n->nkids; i++) {
		unsigned k = depth_of(n->kids[i]);

		if (k > d)
			d = k;
	}
	return d + 1;
}

/* A stable warm color from the label (flamegraph.pl's palette idea); N+1
 * leaves red, other SQL leaves blue. */
static void color_of(const struct node *n, char *buf, size_t size)
{
	unsigned h = 2166136261u;

	for (const char *s = n->label; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	if (n->leaf && n->rank)
		snprintf(buf, size, "rgb(230,%u,%u)", 20 + h % 40, 20 + (h >> 8) % 30);
	else if (n->leaf)
		snprintf(buf, size, "rgb(%u,%u,230)", 80 + h % 60, 140 + (h >> 8) % 60);
	else
		snprintf(buf, size, "rgb(%u,%u,%u)", 220 + h % 35, 100 + (h >> 8) % 110,
			 40 + (h >> 16) % 40);
}

/* The label as far as it fits in w pixels (about 7 per character at 12px),
 * so the picture reads without JavaScript too; the script refits on zoom. */
static void put_fitted(FILE *out, const char *label, double w)
{
	size_t fit = w > 6 ? (size_t)((w - 6) / 7) : 0, len = strlen(label);

	if (fit < 3)
		return;
	if (len <= fit) {
		esc_xml(out, label, len);
		return;
	}
	/* cut on a character boundary */
	len = fit - 2;
	while (len > 0 && ((unsigned char)label[len] & 0xc0) == 0x80)
		len--;
	esc_xml(out, label, len);
	fputs("..", out);
}

static void svg_node(const struct node *n, FILE *out, double x, unsigned level,
		     unsigned height, double scale, uint64_t total, const char *unit)
{
	double w = n->weight * scale, cx = x;
	double y = PAD_TOP + (double)(height - level - 1) * FRAME_H;
	char color[40];

	if (n->label && w >= 0.1) {
		color_of(n, color, sizeof(color));
		fprintf(out, "<g class=\"f%s\"><title>", n->rank ? " nplus1" : "");
		esc_xml(out, n->label, strlen(n->label));
		fprintf(out, " (%" PRIu64 " %s, %.2f%%)</title>", n->weight, unit,
			total ? 100.0 * n->weight / total : 0);
		fprintf(out, "<rect x=\"%.2f\" y=\"%.1f\" width=\"%.2f\" height=\"%d\" fill=\"%s\" rx=\"2\"/>",
			x, y, w, FRAME_H - 1, color);
		fprintf(out, "<text x=\"%.2f\" y=\"%.1f\">", x + 3, y + FRAME_H - 5);
		put_fitted(out, n->label, w);
		fputs("</text></g>\n", out);
	}
	for (size_t i = 0; i < n->nkids; i++) {
		svg_node(n->kids[i], out, cx, n->label ? level + 1 : level, height, scale,
			 total, unit);
		cx += n->kids[i]->weight * scale;
	}
}

/* The viewer: labels fitted to their boxes, details on hover, click to zoom
 * (reset with the top line or Escape), search by substring.  Labels are
 * read from <title> text nodes: nothing from the data is parsed as code. */
static const char svg_script[] =
"<script type=\"text/ecmascript\"><![CDATA[\n"
"'use strict';\n"
"var W=%.1f,P=%.1f,svg=document.documentElement,details,frames=[];\n"
"function init(){details=document.getElementById('details');\n"
" var gs=document.querySelectorAll('g.f');\n"
" for(var i=0;i<gs.length;i++){var g=gs[i],r=g.querySelector('rect');\n"
"  g.ox=parseFloat(r.getAttribute('x'));g.ow=parseFloat(r.getAttribute('width'));\n"
"  g.oy=parseFloat(r.getAttribute('y'));g.label=g.querySelector('title').textContent;\n"
"  g.addEventListener('mouseover',function(){details.textContent=this.label;});\n"
"  g.addEventListener('mouseout',function(){details.textContent=' ';});\n"
"  g.addEventListener('click',function(){zoom(this);});frames.push(g);}\n"
" fit();document.addEventListener('keydown',function(e){if(e.key==='Escape')reset();});}\n"
"function fit(){for(var i=0;i<frames.length;i++){var g=frames[i],r=g.querySelector('rect'),t=g.querySelector('text');\n"
" var w=parseFloat(r.getAttribute('width'));t.setAttribute('x',parseFloat(r.getAttribute('x'))+3);\n"
" var l=g.label.replace(/ \\([0-9]+ [a-z]+, [0-9.]+%%\\)$/,'');var n=Math.floor((w-6)/7);\n"
" t.textContent=n<3||g.style.display==='none'?'':(l.length<=n?l:l.substring(0,n-2)+'..');}}\n"
"function zoom(z){var x0=z.ox,w0=z.ow,s=(W-2*P)/w0;\n"
" for(var i=0;i<frames.length;i++){var g=frames[i],r=g.querySelector('rect');\n"
"  var inside=g.ox+1e-6>=x0&&g.ox+g.ow<=x0+w0+1e-6;var above=g.oy>z.oy;\n"
"  if(inside||(above&&g.ox<=x0+1e-6&&g.ox+g.ow+1e-6>=x0+w0)){g.style.display='';\n"
"   var nx=inside?P+(g.ox-x0)*s:P,nw=inside?g.ow*s:W-2*P;r.setAttribute('x',nx);r.setAttribute('width',nw);\n"
"   g.style.opacity=inside?'1':'0.6';}else{g.style.display='none';}}fit();}\n"
"function reset(){for(var i=0;i<frames.length;i++){var g=frames[i],r=g.querySelector('rect');\n"
" g.style.display='';g.style.opacity='1';r.setAttribute('x',g.ox);r.setAttribute('width',g.ow);}fit();}\n"
"function search(){var s=prompt('Search frames (substring):','');if(s===null)return;var n=0;\n"
" for(var i=0;i<frames.length;i++){var g=frames[i],r=g.querySelector('rect');\n"
"  var hit=s!==''&&g.label.indexOf(s)>=0;r.style.stroke=hit?'#d0f':'';r.style.strokeWidth=hit?'2':'';if(hit)n++;}\n"
" document.getElementById('matched').textContent=s===''?' ':n+' frames match \"'+s+'\"';}\n"
"window.addEventListener('load',init);\n"
"]]></script>\n";

void flame__svg(const struct flame *f, FILE *out, const char *title, const char *unit)
{
	unsigned height = depth_of(&f->root) - 1;
	double height_px = PAD_TOP + height * FRAME_H + 40;
	double scale = f->root.weight ? (SVG_WIDTH - 2 * PAD_SIDE) / f->root.weight : 0;

	fprintf(out, "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n"
		"<svg version=\"1.1\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
		"viewBox=\"0 0 %.0f %.0f\" font-family=\"Verdana,sans-serif\" font-size=\"12\">\n",
		SVG_WIDTH, height_px, SVG_WIDTH, height_px);
	fprintf(out, "<style>g.f:hover rect{stroke:#000;stroke-width:0.5;cursor:pointer}"
		"g.nplus1 rect{stroke:#900;stroke-width:1}text{pointer-events:none}</style>\n");
	fprintf(out, svg_script, SVG_WIDTH, PAD_SIDE);
	fprintf(out, "<rect x=\"0\" y=\"0\" width=\"%.0f\" height=\"%.0f\" fill=\"#fdfdf6\"/>\n",
		SVG_WIDTH, height_px);
	fprintf(out, "<text x=\"%.0f\" y=\"22\" text-anchor=\"middle\" font-size=\"16\">",
		SVG_WIDTH / 2);
	esc_xml(out, title, strlen(title));
	fprintf(out, "</text>\n<text x=\"%.0f\" y=\"42\" fill=\"#555\">red: N+1 and duplicate findings; "
		"click a frame to zoom, Escape to reset</text>\n", PAD_SIDE);
	fprintf(out, "<text x=\"%.0f\" y=\"42\" text-anchor=\"end\" style=\"cursor:pointer\" "
		"onclick=\"search()\">Search</text>\n", SVG_WIDTH - PAD_SIDE);
	fprintf(out, "<text id=\"matched\" x=\"%.0f\" y=\"%.0f\" text-anchor=\"end\"> </text>\n",
		SVG_WIDTH - PAD_SIDE, height_px - 10);
	fprintf(out, "<text id=\"details\" x=\"%.0f\" y=\"%.0f\"> </text>\n", PAD_SIDE,
		height_px - 10);
	svg_node(&f->root, out, PAD_SIDE, 0, height, scale, f->root.weight, unit);
	fputs("</svg>\n", out);
}
