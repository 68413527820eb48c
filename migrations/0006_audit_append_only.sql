-- Custom SQL migration file, put your code below! --
-- The audit log is append-only: the application only INSERTs and SELECTs, and the database refuses
-- UPDATE, DELETE and TRUNCATE whoever asks. A retention job run by a superuser must disable these
-- triggers explicitly (ALTER TABLE audit_events DISABLE TRIGGER ...), which is itself visible.
CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit_events is append-only: % is not allowed', TG_OP USING ERRCODE = 'insufficient_privilege';
END;
$$;
--> statement-breakpoint
CREATE TRIGGER audit_events_no_update_delete BEFORE UPDATE OR DELETE ON audit_events
  FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
--> statement-breakpoint
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
  FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();
