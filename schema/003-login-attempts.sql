-- 003-login-attempts.sql - the login limit's memory: at most 10 attempts in any
-- 60 s per client address (contract section 3), shared by every worker.
-- login_limits has one row per address, locked while an attempt is counted, so
-- racing attempts from one address are counted one after the other.

CREATE TABLE IF NOT EXISTS login_limits (
  address      VARBINARY(64) NOT NULL,
  last_at      DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  PRIMARY KEY (address),
  KEY ix_login_limits_last (last_at)
) ENGINE=InnoDB;

CREATE TABLE IF NOT EXISTS login_attempts (
  id           BIGINT NOT NULL AUTO_INCREMENT,
  address      VARBINARY(64) NOT NULL,
  attempted_at DATETIME(3) NOT NULL,
  PRIMARY KEY (id),
  KEY ix_login_attempts_address (address, attempted_at)
) ENGINE=InnoDB;
