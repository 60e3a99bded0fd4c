-- 001-initial.sql - the whole carebot schema, version 1.
-- InnoDB, utf8mb4, times as DATETIME(3) in UTC (every connection sets time_zone '+00:00').
-- Soft deletes (deleted_at) keep the history of closed chats intact.

CREATE TABLE IF NOT EXISTS departments (
  id           BIGINT NOT NULL AUTO_INCREMENT,
  name         VARCHAR(100) NOT NULL,
  description  VARCHAR(1000) NULL,
  is_active    BOOLEAN NOT NULL DEFAULT TRUE,
  is_default   BOOLEAN NOT NULL DEFAULT FALSE,
  created_at   DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at   DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  deleted_at   DATETIME(3) NULL,
  -- Names are unique ignoring case among live departments; a deleted one frees its name.
  live_name    VARCHAR(100) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin
               AS (IF(deleted_at IS NULL, LOWER(name), NULL)) STORED,
  -- At most one default: the column is 1 for the default and NULL for the rest.
  default_flag TINYINT AS (IF(is_default, 1, NULL)) STORED,
  PRIMARY KEY (id),
  UNIQUE KEY uq_departments_live_name (live_name),
  UNIQUE KEY uq_departments_default (default_flag)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS users (
  id               BIGINT NOT NULL AUTO_INCREMENT,
  username         VARCHAR(50) NOT NULL,
  password_hash    VARCHAR(255) NULL,             -- Argon2id string; NULL for guests
  email            VARCHAR(254) NULL,
  full_name        VARCHAR(100) NOT NULL,
  role             ENUM('admin','agent','customer') NOT NULL,
  department_id    BIGINT NULL,
  presence         ENUM('available','busy','offline') NOT NULL DEFAULT 'offline',
  max_chats        INT NOT NULL DEFAULT 5,
  is_active        BOOLEAN NOT NULL DEFAULT TRUE,
  last_seen_at     DATETIME(3) NULL,
  last_assigned_at DATETIME(6) NULL,              -- tie-break of rule 6.2.3 (µs: several assignments per ms)
  created_at       DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at       DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  PRIMARY KEY (id),
  UNIQUE KEY uq_users_username (username),
  KEY ix_users_department (department_id, role, is_active),
  KEY ix_users_role (role, is_active),
  CONSTRAINT fk_users_department FOREIGN KEY (department_id) REFERENCES departments (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS sessions (
  id          BIGINT NOT NULL AUTO_INCREMENT,
  user_id     BIGINT NOT NULL,
  token_hash  BINARY(32) NOT NULL,                -- SHA-256 of the token; the token itself is never stored
  created_at  DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  expires_at  DATETIME(3) NOT NULL,
  revoked_at  DATETIME(3) NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uq_sessions_token (token_hash),
  KEY ix_sessions_user (user_id),
  CONSTRAINT fk_sessions_user FOREIGN KEY (user_id) REFERENCES users (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS chats (
  id             BIGINT NOT NULL AUTO_INCREMENT,
  customer_id    BIGINT NOT NULL,
  department_id  BIGINT NOT NULL,
  agent_id       BIGINT NULL,
  status         ENUM('waiting','active','closed') NOT NULL DEFAULT 'waiting',
  subject        VARCHAR(200) NULL,
  created_at     DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  queued_at      DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  assigned_at    DATETIME(3) NULL,
  closed_at      DATETIME(3) NULL,
  closed_by      BIGINT NULL,
  PRIMARY KEY (id),
  KEY ix_chats_queue (department_id, status, queued_at, id),
  KEY ix_chats_agent (agent_id, status),
  KEY ix_chats_customer (customer_id, id),
  KEY ix_chats_status (status, id),
  CONSTRAINT fk_chats_customer FOREIGN KEY (customer_id) REFERENCES users (id),
  CONSTRAINT fk_chats_department FOREIGN KEY (department_id) REFERENCES departments (id),
  CONSTRAINT fk_chats_agent FOREIGN KEY (agent_id) REFERENCES users (id),
  CONSTRAINT fk_chats_closed_by FOREIGN KEY (closed_by) REFERENCES users (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS messages (
  id           BIGINT NOT NULL AUTO_INCREMENT,
  chat_id      BIGINT NOT NULL,
  sender_id    BIGINT NULL,                       -- NULL for system messages
  sender_role  ENUM('customer','agent','admin','system') NOT NULL,
  content      TEXT NOT NULL,
  created_at   DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  PRIMARY KEY (id),
  KEY ix_messages_chat (chat_id, id),
  CONSTRAINT fk_messages_chat FOREIGN KEY (chat_id) REFERENCES chats (id),
  CONSTRAINT fk_messages_sender FOREIGN KEY (sender_id) REFERENCES users (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS transfers (
  id                  BIGINT NOT NULL AUTO_INCREMENT,
  chat_id             BIGINT NOT NULL,
  from_department_id  BIGINT NOT NULL,
  to_department_id    BIGINT NOT NULL,
  from_agent_id       BIGINT NULL,
  to_agent_id         BIGINT NULL,
  reason              VARCHAR(500) NULL,
  transferred_by      BIGINT NOT NULL,
  created_at          DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  PRIMARY KEY (id),
  KEY ix_transfers_chat (chat_id, id),
  CONSTRAINT fk_transfers_chat FOREIGN KEY (chat_id) REFERENCES chats (id),
  CONSTRAINT fk_transfers_from_dept FOREIGN KEY (from_department_id) REFERENCES departments (id),
  CONSTRAINT fk_transfers_to_dept FOREIGN KEY (to_department_id) REFERENCES departments (id),
  CONSTRAINT fk_transfers_from_agent FOREIGN KEY (from_agent_id) REFERENCES users (id),
  CONSTRAINT fk_transfers_to_agent FOREIGN KEY (to_agent_id) REFERENCES users (id),
  CONSTRAINT fk_transfers_by FOREIGN KEY (transferred_by) REFERENCES users (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Idempotency-Key (contract section 2): one row per user, endpoint and key,
-- inserted in the same transaction as what it protects, so a concurrent retry
-- waits on the row lock and then replays the stored answer.
CREATE TABLE IF NOT EXISTS idempotency_keys (
  user_id       BIGINT NOT NULL,
  endpoint      VARCHAR(64) CHARACTER SET ascii NOT NULL,
  idem_key      VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  request_hash  BINARY(32) NOT NULL,
  status        SMALLINT NOT NULL,
  response      MEDIUMTEXT NOT NULL,
  created_at    DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  PRIMARY KEY (user_id, endpoint, idem_key),
  KEY ix_idempotency_created (created_at),
  CONSTRAINT fk_idempotency_user FOREIGN KEY (user_id) REFERENCES users (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
