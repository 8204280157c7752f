-- Definitions of the test runs' trigger functions, applied after the migrations when changed.


-- Deleting a test run (its owner erased) erases the throwaway users it made, with their data.
CREATE OR REPLACE FUNCTION maas.drop_test_run_user() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM maas.users WHERE id = OLD.user_id;
  DELETE FROM maas.memory_stats WHERE user_id = OLD.user_id;
  RETURN NULL;
END $$;
