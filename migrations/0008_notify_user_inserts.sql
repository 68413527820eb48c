-- A new user changes every listing that could include it (GET /users pages are cached per instance
-- and dropped on any user notification, src/security/auth-cache.ts). 0002 published updates and
-- deletes only; inserts join them on the same channel and payload.
CREATE TRIGGER users_notify_auth_insert AFTER INSERT ON users FOR EACH ROW EXECUTE FUNCTION cs_notify_auth();
