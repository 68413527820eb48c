-- Narrower cache signals (src/security/auth-cache.ts, page-cache.ts), replacing the users and roles
-- triggers of 0002/0008, which fired on every UPDATE (a login's tracking columns dropped every cached
-- session of the user and every cached /users page on every instance).
--   u:<user id>        a column that decides authentication or is shown changed (everything but the
--                      tracking columns below), or the row went: that user's cached sessions and
--                      every cached /users page go
--   t:<user id>:<json> only tracking columns changed (login time, IP, count, last TOTP step): cached
--                      sessions are patched with the new values, not dropped; pages keep
--   p                  a user was inserted: pages go, no cached session is concerned
--   r:<role name>      a role's name or permissions changed, or it was deleted: the cached sessions
--                      holding that role (by its old name) and every page go
-- New columns count as deciding (the WHEN clause lists what is excluded, not what is included).
CREATE FUNCTION cs_notify_user_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    PERFORM pg_notify('cs_auth', 'p');
  ELSIF TG_ARGV[0] = 'tracking' THEN
    PERFORM pg_notify('cs_auth', 't:' || NEW.id::text || ':' || json_build_object(
      'current_login_at', (extract(epoch from NEW.current_login_at) * 1000)::bigint,
      'last_login_at', (extract(epoch from NEW.last_login_at) * 1000)::bigint,
      'current_login_ip', NEW.current_login_ip,
      'last_login_ip', NEW.last_login_ip,
      'login_count', NEW.login_count,
      'tf_totp_last_step', NEW.tf_totp_last_step)::text);
  ELSE
    PERFORM pg_notify('cs_auth', 'u:' || COALESCE(NEW.id, OLD.id)::text);
  END IF;
  RETURN NULL;
END;
$$;
--> statement-breakpoint
CREATE FUNCTION cs_notify_role_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('cs_auth', 'r:' || OLD.name);
  RETURN NULL;
END;
$$;
--> statement-breakpoint
DROP TRIGGER users_notify_auth ON users;
--> statement-breakpoint
DROP TRIGGER users_notify_auth_insert ON users;
--> statement-breakpoint
DROP TRIGGER roles_notify_auth ON roles;
--> statement-breakpoint
CREATE TRIGGER users_notify_auth_update AFTER UPDATE ON users FOR EACH ROW
  WHEN ((to_jsonb(OLD) - ARRAY['current_login_at', 'last_login_at', 'current_login_ip', 'last_login_ip', 'login_count', 'tf_totp_last_step'])
     IS DISTINCT FROM (to_jsonb(NEW) - ARRAY['current_login_at', 'last_login_at', 'current_login_ip', 'last_login_ip', 'login_count', 'tf_totp_last_step']))
  EXECUTE FUNCTION cs_notify_user_change();
--> statement-breakpoint
CREATE TRIGGER users_notify_tracking AFTER UPDATE ON users FOR EACH ROW
  WHEN (OLD.current_login_at IS DISTINCT FROM NEW.current_login_at OR OLD.last_login_at IS DISTINCT FROM NEW.last_login_at
     OR OLD.current_login_ip IS DISTINCT FROM NEW.current_login_ip OR OLD.last_login_ip IS DISTINCT FROM NEW.last_login_ip
     OR OLD.login_count IS DISTINCT FROM NEW.login_count OR OLD.tf_totp_last_step IS DISTINCT FROM NEW.tf_totp_last_step)
  EXECUTE FUNCTION cs_notify_user_change('tracking');
--> statement-breakpoint
CREATE TRIGGER users_notify_auth_insert_delete AFTER INSERT OR DELETE ON users FOR EACH ROW EXECUTE FUNCTION cs_notify_user_change();
--> statement-breakpoint
CREATE TRIGGER roles_notify_auth AFTER UPDATE ON roles FOR EACH ROW
  WHEN (OLD.name IS DISTINCT FROM NEW.name OR OLD.permissions IS DISTINCT FROM NEW.permissions)
  EXECUTE FUNCTION cs_notify_role_change();
--> statement-breakpoint
CREATE TRIGGER roles_notify_auth_delete AFTER DELETE ON roles FOR EACH ROW EXECUTE FUNCTION cs_notify_role_change();
