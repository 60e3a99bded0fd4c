-- 002-department-names-nopad.sql - a department's name is compared exactly but for case.
-- utf8mb4_bin pads: 'Sales ' and 'Sales' were the same name while ' Sales' was another.
-- With the no-pad collation white space counts wherever it stands.

ALTER TABLE departments
  MODIFY live_name VARCHAR(100) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin
    AS (IF(deleted_at IS NULL, LOWER(name), NULL)) STORED;
