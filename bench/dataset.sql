-- dataset.sql - the bench's dataset, loaded in bulk on top of the seeded
-- sample data (contract section 9) of a throwaway instance. The bench script
-- prepends one line that sets the sizes:
--
--   SET @chats = 2000, @per_chat = 100, @open = 200, @agents_per_dept = 10;
--
-- and runs the file as the application's MariaDB user. It makes:
--   * agents: each of the 4 seeded departments filled up to @agents_per_dept
--     (bench_a<dept>_<n>, password "password123" like the seeded agents),
--     every agent present ("available", max_chats 5, just seen);
--   * @chats customers (bench_c<k>, no password: guests), one chat each,
--     spread round robin over the departments and over the department's
--     agents, over the last 30 days; the newest @open chats are "active"
--     (with 40 agents and 200 open chats every agent has 5: at capacity),
--     the rest "closed";
--   * @per_chat messages per chat (customer, "joined" system message, then
--     customer and agent in turn, 20-220 characters).
-- Nothing here goes through the API: it is the bulk, loaded for speed; the
-- bench then mints tokens with `carebot-admin token`.

SET SESSION time_zone = '+00:00';
SET @t0 = NOW(3) - INTERVAL 31 DAY;
SET @span = 30 * 86400;
SET @pw = (SELECT password_hash FROM users WHERE username = 'alice_cc');
SET @lorem = 'Hello, I have a question about my order and the invoice I received yesterday. '
	'Could you check the delivery date, the tracking number and whether the discount was applied? '
	'Thanks a lot for your help, have a nice day.';

CREATE TEMPORARY TABLE bench_d (id BIGINT PRIMARY KEY, di INT, nagents INT);
INSERT INTO bench_d
SELECT d.id, ROW_NUMBER() OVER (ORDER BY d.id) - 1,
       (SELECT COUNT(*) FROM users u WHERE u.department_id = d.id AND u.role = 'agent' AND u.is_active)
FROM departments d WHERE d.deleted_at IS NULL AND d.is_active ORDER BY d.id LIMIT 4;

INSERT INTO users (username, password_hash, email, full_name, role, department_id, presence,
                   max_chats, last_seen_at)
SELECT CONCAT('bench_a', d.id, '_', s.seq), @pw, CONCAT('bench_a', d.id, '_', s.seq, '@bench.example'),
       CONCAT('Bench Agent ', d.id, '-', s.seq), 'agent', d.id, 'available', 5, NOW(3)
FROM bench_d d JOIN seq_1_to_100 s ON s.seq > d.nagents AND s.seq <= @agents_per_dept;

UPDATE users SET presence = 'available', max_chats = 5, last_seen_at = NOW(3)
WHERE role = 'agent' AND is_active;

CREATE TEMPORARY TABLE bench_a (id BIGINT PRIMARY KEY, department_id BIGINT, ai INT, full_name VARCHAR(100),
                                KEY (department_id, ai));
INSERT INTO bench_a
SELECT u.id, u.department_id, ROW_NUMBER() OVER (PARTITION BY u.department_id ORDER BY u.id) - 1, u.full_name
FROM users u JOIN bench_d d ON d.id = u.department_id
WHERE u.role = 'agent' AND u.is_active;
SET @nper = (SELECT MIN(n) FROM (SELECT COUNT(*) AS n FROM bench_a GROUP BY department_id) x);

INSERT INTO users (username, email, full_name, role)
SELECT CONCAT('bench_c', s.seq), CONCAT('bench_c', s.seq, '@bench.example'),
       CONCAT('Bench Customer ', s.seq), 'customer'
FROM seq_1_to_1000000 s WHERE s.seq <= @chats;

-- Chat k (1..@chats) belongs to customer bench_c<k>, department k mod 4, and
-- the department's agent number ((k - 1) div 4) mod @nper.
INSERT INTO chats (customer_id, department_id, agent_id, status, subject, created_at, queued_at,
                   assigned_at, closed_at, closed_by)
SELECT c.id, d.id, a.id, IF(c.k > @chats - @open, 'active', 'closed'), CONCAT('Bench chat ', c.k),
       c.t, c.t, c.t + INTERVAL 1 SECOND,
       IF(c.k > @chats - @open, NULL, c.t + INTERVAL @per_chat * 5 + 60 SECOND),
       IF(c.k > @chats - @open, NULL, a.id)
FROM (SELECT u.id, CAST(SUBSTRING(u.username, 8) AS UNSIGNED) AS k,
             @t0 + INTERVAL FLOOR(CAST(SUBSTRING(u.username, 8) AS UNSIGNED) * @span / @chats) SECOND AS t
      FROM users u WHERE u.username LIKE 'bench\_c%') c
JOIN bench_d d ON d.di = c.k MOD 4
JOIN bench_a a ON a.department_id = d.id AND a.ai = ((c.k - 1) DIV 4) MOD @nper
ORDER BY c.k;

INSERT INTO messages (chat_id, sender_id, sender_role, content, created_at)
SELECT c.id,
       CASE WHEN s.seq = 2 THEN NULL WHEN s.seq % 2 = 1 THEN c.customer_id ELSE c.agent_id END,
       CASE WHEN s.seq = 2 THEN 'system' WHEN s.seq % 2 = 1 THEN 'customer' ELSE 'agent' END,
       IF(s.seq = 2, CONCAT(a.full_name, ' joined the chat.'),
          CONCAT('#', s.seq, ' ', SUBSTRING(@lorem, 1 + (s.seq * 7) % 20, 20 + (s.seq * 37 + c.id) % 200))),
       c.created_at + INTERVAL s.seq * 5 SECOND
FROM chats c JOIN bench_a a ON a.id = c.agent_id
JOIN seq_1_to_100000 s ON s.seq <= @per_chat
WHERE c.subject LIKE 'Bench chat %'
ORDER BY c.id, s.seq;

SELECT (SELECT COUNT(*) FROM departments WHERE deleted_at IS NULL) AS departments,
       (SELECT COUNT(*) FROM users WHERE role = 'agent' AND is_active) AS agents,
       (SELECT COUNT(*) FROM chats) AS chats,
       (SELECT COUNT(*) FROM chats WHERE status <> 'closed') AS open_chats,
       (SELECT COUNT(*) FROM messages) AS messages;
