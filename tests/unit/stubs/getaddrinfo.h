/* stands in for a PostgreSQL server header libpq-int.h includes; nothing in it is needed */
