-- run by test_tracer.py through psql -f: each statement is sent on its own
CREATE TEMP TABLE psql_t (n int);
INSERT INTO psql_t SELECT generate_series(1, 5);
SELECT count(*) FROM psql_t;
UPDATE psql_t
   SET n = n + 1
 WHERE n > 2;
