SELECT * FROM t WHERE a IN (1, 2, 3) AND b = 'x' /* c */ -- d
 LIMIT 21