-- 10,000 distinct query shapes: the column alias changes with the value
-- (SELECT 4711 AS c4711), so normalizing literals leaves 10,000 texts.
\set k random(1, 10000)
SELECT :k AS c:k;
