-- 004-posts-lock-no-user-row.sql - a post takes no lock on its poster's row.
-- A post runs under its chat's mutex, without its department's lock (README 6,
-- "Order"). The foreign keys of messages.sender_id and idempotency_keys.user_id
-- made its INSERTs take a shared lock on the poster's users row. A transaction
-- that had locked that row (an agent's presence, its department locked) and then
-- waited for the mutex of one of the department's chats closed a cycle that
-- neither MariaDB nor the mutex could see, and both sides waited 10 s (README 5).
-- Both columns always hold the authenticated user, and users are never deleted,
-- only deactivated, so the rows they name exist. Their indexes stay.

ALTER TABLE messages DROP FOREIGN KEY IF EXISTS fk_messages_sender;
ALTER TABLE idempotency_keys DROP FOREIGN KEY IF EXISTS fk_idempotency_user;
