-- 005-list-indexes.sql - lists and sweeps that stay quick as a year of data piles up.
-- An audit at 50,000 chats and 20,000 users found the chat lists of agents and
-- of a department scanning every chat (30-90 ms a page, 32 pages/s under load)
-- and the cron job's login sweep scanning every attempt (README 5, "Lists at
-- scale"). A department's chats in id order, with or without a status, and the
-- agent's own: the lists read them newest first and stop at the page's end.
-- The sessions and the attempts by their age, for the sweeps of `reassign`.
-- Added in place (InnoDB builds a secondary index without blocking writes);
-- IF NOT EXISTS lets a run that stopped halfway be run again.

ALTER TABLE chats
  ADD KEY IF NOT EXISTS ix_chats_department (department_id, id),
  ADD KEY IF NOT EXISTS ix_chats_department_status (department_id, status, id),
  ADD KEY IF NOT EXISTS ix_chats_agent_id (agent_id, id);
ALTER TABLE login_attempts ADD KEY IF NOT EXISTS ix_login_attempts_at (attempted_at);
ALTER TABLE sessions ADD KEY IF NOT EXISTS ix_sessions_expires (expires_at);
