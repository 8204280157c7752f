-- Self-learning on a hard world (issue #16): corpus replay, answers scored from evidence ids,
-- uploaded conversations, and parameter versions pinned to one synthetic user or thread.

-- An emulator run either plays scripted dialogs (#6) or replays conversations: stores their
-- histories and asks their questions. `source` names what it replayed: the world (its hash,
-- generator, vocabulary and size) and the uploaded conversations (their hashes).
ALTER TABLE selflearn.emulator_runs
  ADD COLUMN kind text NOT NULL DEFAULT 'dialogs' CHECK (kind IN ('dialogs', 'replay')),
  ADD COLUMN source jsonb;
ALTER TABLE selflearn.experiments ADD COLUMN source jsonb;

-- Conversations in LoCoMo's format, uploaded by `maas emulate --corpus` / `maas cycle run
-- --corpus`; addressed by the sha256 of their canonical JSON, so an upload is idempotent.
CREATE TABLE selflearn.conversations (
  hash text PRIMARY KEY,
  conversation_id text NOT NULL,
  conversation jsonb NOT NULL,
  turns integer NOT NULL,
  questions integer NOT NULL,
  uploaded_at timestamptz NOT NULL DEFAULT now()
);

-- One replayed question asked once (one /v1/context run): its ground truth and what the
-- emulator saw of the reply. What was retrieved is the sensor's copy (sensor_retrievals).
CREATE TABLE selflearn.replay_answers (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  emulator_run_id uuid NOT NULL REFERENCES selflearn.emulator_runs (id) ON DELETE CASCADE,
  user_id uuid NOT NULL REFERENCES maas.users (id) ON DELETE CASCADE,
  run_id uuid NOT NULL UNIQUE,
  arm text CHECK (arm IN ('baseline', 'variant')),
  conversation text NOT NULL,             -- the cluster the question belongs to
  question_id text NOT NULL,
  qtype text NOT NULL,
  question text NOT NULL,
  expected text,                          -- null: unanswerable (or no answer given)
  evidence bigint[] NOT NULL,             -- message ids holding the evidence; {} unanswerable
  budget integer NOT NULL,
  context_hit boolean,                    -- the packed context holds the expected answer
  top_score real,                         -- best fused score retrieved; null: nothing
  context_tokens integer NOT NULL,
  recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX replay_answers_run ON selflearn.replay_answers (emulator_run_id, arm);
CREATE INDEX replay_answers_user ON selflearn.replay_answers (user_id);

-- A parameter version pinned to one synthetic user (its runs) or one thread (its archive jobs)
-- for the life of an experiment: the arms of a replay take turns user by user on the same stored
-- memories while everyone else keeps the version in force. Only selflearn writes pins (admin
-- work); they steer nothing once their experiment is no longer running.
CREATE TABLE selflearn.param_pins (
  subject uuid PRIMARY KEY,
  kind text NOT NULL CHECK (kind IN ('user', 'thread')),
  experiment_id uuid NOT NULL REFERENCES selflearn.experiments (id) ON DELETE CASCADE,
  version integer NOT NULL REFERENCES selflearn.experiment_parameters (version),
  pinned_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX param_pins_experiment ON selflearn.param_pins (experiment_id);
