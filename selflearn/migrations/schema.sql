-- Generated (python -m maas.db.snapshot): the schema of a freshly migrated database.
CREATE SCHEMA selflearn;

CREATE FUNCTION selflearn.error_class(error text) RETURNS text
    LANGUAGE sql IMMUTABLE
    AS $$
  SELECT CASE
    WHEN error IS NULL THEN NULL
    WHEN error LIKE 'lease expired%' THEN 'lease_expired'
    WHEN error ILIKE '%deadline exceeded%' OR error ILIKE '%timeout%' OR error ILIKE '%timed out%'
      THEN 'timeout'
    WHEN error ~ '^(analyzer|responder|archivist): ' THEN 'llm'
    WHEN error ~ '^[A-Za-z_][A-Za-z0-9_.]*(Error|Exception)\M'
      THEN substring(error FROM '^[A-Za-z_][A-Za-z0-9_.]*')
    ELSE 'stage_error'
  END
$$;

CREATE FUNCTION selflearn.freeze_spec() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
  IF NEW.spec IS DISTINCT FROM OLD.spec OR NEW.spec_hash IS DISTINCT FROM OLD.spec_hash THEN
    RAISE EXCEPTION 'experiment % spec is frozen once started', OLD.id;
  END IF;
  RETURN NEW;
END $$;

CREATE FUNCTION selflearn.span_ms(a timestamp with time zone, b timestamp with time zone) RETURNS double precision
    LANGUAGE sql IMMUTABLE
    AS $$ SELECT round((extract(epoch FROM b - a) * 1000)::numeric, 2)::float8 $$;

CREATE TABLE selflearn.conversations (
    hash text NOT NULL,
    conversation_id text NOT NULL,
    conversation jsonb NOT NULL,
    turns integer NOT NULL,
    questions integer NOT NULL,
    uploaded_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE TABLE selflearn.cycle_experiments (
    cycle_id uuid NOT NULL,
    experiment_id uuid NOT NULL,
    role text NOT NULL,
    trial integer,
    CONSTRAINT cycle_experiments_role_check CHECK ((role = ANY (ARRAY['macro'::text, 'trial'::text, 'confirm'::text])))
);

CREATE TABLE selflearn.cycles (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    kind text NOT NULL,
    goal_id integer,
    status text DEFAULT 'running'::text NOT NULL,
    phase text DEFAULT 'starting'::text NOT NULL,
    progress double precision DEFAULT 0 NOT NULL,
    config jsonb DEFAULT '{}'::jsonb NOT NULL,
    state jsonb DEFAULT '{}'::jsonb NOT NULL,
    outcome text,
    result jsonb,
    report_md text,
    requested_by text NOT NULL,
    stop_requested boolean DEFAULT false NOT NULL,
    lease_token uuid,
    lease_until timestamp with time zone,
    error text,
    started_at timestamp with time zone DEFAULT clock_timestamp() NOT NULL,
    finished_at timestamp with time zone,
    CONSTRAINT cycles_kind_check CHECK ((kind = ANY (ARRAY['micro'::text, 'macro'::text, 'deep'::text]))),
    CONSTRAINT cycles_progress_check CHECK (((progress >= (0)::double precision) AND (progress <= (1)::double precision))),
    CONSTRAINT cycles_status_check CHECK ((status = ANY (ARRAY['running'::text, 'done'::text, 'failed'::text, 'stopped'::text, 'aborted'::text])))
);

CREATE TABLE selflearn.emulator_expectations (
    id bigint NOT NULL,
    emulator_run_id uuid NOT NULL,
    user_id uuid NOT NULL,
    run_id uuid NOT NULL,
    persona text NOT NULL,
    scenario text NOT NULL,
    ability text NOT NULL,
    attempt integer DEFAULT 1 NOT NULL,
    question text NOT NULL,
    expected_answer text NOT NULL,
    fact_ids text[] NOT NULL,
    planted jsonb NOT NULL,
    retrieved_fact_ids text[] NOT NULL,
    recall_hit boolean,
    answer_hit boolean NOT NULL,
    answer text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT emulator_expectations_ability_check CHECK ((ability = ANY (ARRAY['single_fact'::text, 'multi_hop'::text, 'temporal'::text, 'knowledge_update'::text, 'abstention'::text])))
);

ALTER TABLE selflearn.emulator_expectations ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME selflearn.emulator_expectations_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE selflearn.emulator_runs (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    seed bigint NOT NULL,
    dialogs_requested integer NOT NULL,
    concurrency integer NOT NULL,
    target_url text NOT NULL,
    status text DEFAULT 'running'::text NOT NULL,
    dialogs integer DEFAULT 0 NOT NULL,
    turns integer DEFAULT 0 NOT NULL,
    runs integer DEFAULT 0 NOT NULL,
    failures integer DEFAULT 0 NOT NULL,
    summary jsonb,
    error text,
    started_at timestamp with time zone DEFAULT now() NOT NULL,
    finished_at timestamp with time zone,
    heartbeat_at timestamp with time zone DEFAULT now() NOT NULL,
    kind text DEFAULT 'dialogs'::text NOT NULL,
    source jsonb,
    CONSTRAINT emulator_runs_concurrency_check CHECK ((concurrency > 0)),
    CONSTRAINT emulator_runs_dialogs_requested_check CHECK ((dialogs_requested > 0)),
    CONSTRAINT emulator_runs_kind_check CHECK ((kind = ANY (ARRAY['dialogs'::text, 'replay'::text]))),
    CONSTRAINT emulator_runs_status_check CHECK ((status = ANY (ARRAY['running'::text, 'completed'::text, 'stopped'::text, 'failed'::text])))
);

CREATE TABLE selflearn.experiment_parameters (
    version integer NOT NULL,
    label text GENERATED ALWAYS AS (('tuner-'::text || (version)::text)) STORED,
    params jsonb NOT NULL,
    active boolean DEFAULT false NOT NULL,
    parent integer,
    reason text NOT NULL,
    created_by text NOT NULL,
    experiment_id uuid,
    arm text,
    activated_at timestamp with time zone,
    rolled_back_at timestamp with time zone,
    created_at timestamp with time zone DEFAULT clock_timestamp() NOT NULL,
    CONSTRAINT experiment_parameters_arm_check CHECK ((arm = ANY (ARRAY['baseline'::text, 'variant'::text]))),
    CONSTRAINT experiment_parameters_created_by_check CHECK ((created_by = ANY (ARRAY['teacher'::text, 'manager'::text, 'person'::text])))
);

ALTER TABLE selflearn.experiment_parameters ALTER COLUMN version ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME selflearn.experiment_parameters_version_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE selflearn.experiments (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    name text NOT NULL,
    spec jsonb NOT NULL,
    spec_hash text NOT NULL,
    mode text NOT NULL,
    status text DEFAULT 'running'::text NOT NULL,
    live_arm text,
    baseline_emulator_run uuid,
    variant_emulator_run uuid,
    error text,
    started_at timestamp with time zone DEFAULT now() NOT NULL,
    finished_at timestamp with time zone,
    source jsonb,
    CONSTRAINT experiments_live_arm_check CHECK ((live_arm = ANY (ARRAY['baseline'::text, 'variant'::text]))),
    CONSTRAINT experiments_mode_check CHECK ((mode = ANY (ARRAY['paired'::text, 'split'::text]))),
    CONSTRAINT experiments_status_check CHECK ((status = ANY (ARRAY['running'::text, 'done'::text, 'failed'::text, 'stopped'::text])))
);

CREATE VIEW selflearn.finished_retrievals AS
 SELECT run_id,
    memory_ids,
    used,
    tokens,
    ( SELECT COALESCE(jsonb_agg(COALESCE(to_jsonb(m.source_message_ids), '[]'::jsonb) ORDER BY u.i), '[]'::jsonb) AS "coalesce"
           FROM (unnest(r.memory_ids) WITH ORDINALITY u(id, i)
             LEFT JOIN LATERAL ( SELECT x.source_message_ids
                   FROM maas.memories x
                  WHERE (x.id = u.id)
                 OFFSET 0) m ON (true))) AS sources
   FROM maas.run_retrievals r;

CREATE VIEW selflearn.finished_runs AS
 SELECT r.id AS run_id,
    r.user_id,
    r.thread_id,
    r.client_type,
    r.mode,
    r.param_version,
    ( SELECT p.arm
           FROM selflearn.experiment_parameters p
          WHERE (p.label = r.param_version)) AS experiment_arm,
    (r.status)::text AS status,
    (r.stop_at)::text AS stop_at,
        CASE
            WHEN (r.status = 'FAILED'::maas.run_status) THEN selflearn.error_class(r.error)
            ELSE NULL::text
        END AS error_class,
        CASE
            WHEN (r.status <> 'FAILED'::maas.run_status) THEN NULL::text
            WHEN (r.responding_at IS NOT NULL) THEN 'responder'::text
            WHEN (r.assembling_at IS NOT NULL) THEN 'assembler'::text
            WHEN (r.analyzing_at IS NOT NULL) THEN 'analyzer'::text
            ELSE 'queue'::text
        END AS failed_stage,
    r.created_at AS started_at,
    e.finished_at,
    selflearn.span_ms(r.created_at, e.finished_at) AS latency_ms,
    selflearn.span_ms(r.created_at, r.analyzing_at) AS queue_ms,
    selflearn.span_ms(r.analyzing_at, r.analyzed_at) AS analyzer_ms,
    selflearn.span_ms(r.assembling_at, r.ready_at) AS assembler_ms,
    selflearn.span_ms(r.responding_at, r.completed_at) AS responder_ms,
    c.prompt_tokens,
    c.completion_tokens,
    c.llm_calls,
    m.retrieved AS memories_retrieved,
    m.used AS memories_used,
    (m.retrieved > 0) AS found_anything,
    r.context_tokens
   FROM (((maas.pipeline_runs r
     CROSS JOIN LATERAL ( SELECT
                CASE r.status
                    WHEN 'COMPLETED'::maas.run_status THEN r.completed_at
                    WHEN 'FAILED'::maas.run_status THEN r.failed_at
                    ELSE r.ready_at
                END AS finished_at) e)
     CROSS JOIN LATERAL ( SELECT (COALESCE(sum(x.prompt_tokens), (0)::bigint))::integer AS prompt_tokens,
            (COALESCE(sum(x.completion_tokens), (0)::bigint))::integer AS completion_tokens,
            (count(*))::integer AS llm_calls
           FROM maas.llm_calls x
          WHERE (x.run_id = r.id)) c)
     CROSS JOIN LATERAL ( SELECT COALESCE(max(cardinality(x.memory_ids)), 0) AS retrieved,
            COALESCE(max(cardinality(array_positions(x.used, true))), 0) AS used
           FROM maas.run_retrievals x
          WHERE (x.run_id = r.id)) m)
  WHERE ((r.status = ANY (ARRAY['COMPLETED'::maas.run_status, 'FAILED'::maas.run_status])) OR ((r.status = 'READY'::maas.run_status) AND (r.stop_at = 'READY'::maas.run_status)));

CREATE TABLE selflearn.goal_measurements (
    id bigint NOT NULL,
    goal_id integer NOT NULL,
    cycle_id uuid,
    metric text NOT NULL,
    value double precision NOT NULL,
    ci_low double precision,
    ci_high double precision,
    param_version text,
    source text NOT NULL,
    in_force boolean NOT NULL,
    measured_at timestamp with time zone DEFAULT clock_timestamp() NOT NULL,
    CONSTRAINT goal_measurements_source_check CHECK ((source = ANY (ARRAY['micro'::text, 'baseline'::text, 'variant'::text])))
);

ALTER TABLE selflearn.goal_measurements ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME selflearn.goal_measurements_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE selflearn.goals (
    id integer NOT NULL,
    name text NOT NULL,
    description text DEFAULT ''::text NOT NULL,
    metric text NOT NULL,
    direction text NOT NULL,
    target double precision NOT NULL,
    constraints jsonb DEFAULT '[]'::jsonb NOT NULL,
    search_space jsonb DEFAULT '{}'::jsonb NOT NULL,
    status text DEFAULT 'active'::text NOT NULL,
    created_at timestamp with time zone DEFAULT clock_timestamp() NOT NULL,
    updated_at timestamp with time zone DEFAULT clock_timestamp() NOT NULL,
    CONSTRAINT goals_direction_check CHECK ((direction = ANY (ARRAY['increase'::text, 'decrease'::text]))),
    CONSTRAINT goals_name_check CHECK (((length(name) >= 1) AND (length(name) <= 200))),
    CONSTRAINT goals_status_check CHECK ((status = ANY (ARRAY['active'::text, 'paused'::text, 'achieved'::text, 'archived'::text])))
);

ALTER TABLE selflearn.goals ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME selflearn.goals_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE VIEW selflearn.judge_inputs AS
 SELECT id AS run_id,
    user_id,
    query,
    COALESCE(answer, ''::text) AS answer,
    COALESCE(context_text, ''::text) AS context_text,
    COALESCE(( SELECT jsonb_agg(jsonb_build_object('memory_id', m.id, 'text', m.text) ORDER BY rm.rank) AS jsonb_agg
           FROM (maas.run_memories rm
             JOIN maas.memories m ON ((m.id = rm.memory_id)))
          WHERE ((rm.run_id = r.id) AND rm.used)), '[]'::jsonb) AS used_memories
   FROM maas.pipeline_runs r
  WHERE (status = 'COMPLETED'::maas.run_status);

CREATE TABLE selflearn.judgements (
    id bigint NOT NULL,
    run_id uuid NOT NULL,
    user_id uuid NOT NULL,
    experiment_id uuid,
    judge_version text NOT NULL,
    aspect text NOT NULL,
    memory_id bigint,
    score double precision NOT NULL,
    swapped boolean DEFAULT false NOT NULL,
    repeat integer DEFAULT 1 NOT NULL,
    created_at timestamp with time zone DEFAULT clock_timestamp() NOT NULL,
    CONSTRAINT judgements_aspect_check CHECK ((aspect = ANY (ARRAY['hallucination'::text, 'uses_memory'::text, 'relevance'::text]))),
    CONSTRAINT judgements_score_check CHECK (((score >= (0)::double precision) AND (score <= (1)::double precision)))
);

ALTER TABLE selflearn.judgements ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME selflearn.judgements_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE selflearn.param_pins (
    subject uuid NOT NULL,
    kind text NOT NULL,
    experiment_id uuid NOT NULL,
    version integer NOT NULL,
    pinned_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT param_pins_kind_check CHECK ((kind = ANY (ARRAY['user'::text, 'thread'::text])))
);

CREATE TABLE selflearn.parameter_audit (
    id bigint NOT NULL,
    at timestamp with time zone DEFAULT clock_timestamp() NOT NULL,
    action text NOT NULL,
    actor text NOT NULL,
    who text NOT NULL,
    reason text NOT NULL,
    experiment_id uuid,
    version integer,
    previous_version integer,
    diff jsonb DEFAULT '{}'::jsonb NOT NULL,
    details jsonb DEFAULT '{}'::jsonb NOT NULL,
    CONSTRAINT parameter_audit_action_check CHECK ((action = ANY (ARRAY['store'::text, 'prepare'::text, 'activate'::text, 'deactivate'::text, 'rollback'::text, 'guardrail_breach'::text, 'auto_rollback'::text, 'experiment_arm'::text, 'experiment_end'::text]))),
    CONSTRAINT parameter_audit_actor_check CHECK ((actor = ANY (ARRAY['teacher'::text, 'manager'::text, 'person'::text])))
);

ALTER TABLE selflearn.parameter_audit ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME selflearn.parameter_audit_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE selflearn.proposals (
    id integer NOT NULL,
    cycle_id uuid,
    goal_id integer,
    experiment_id uuid,
    version integer NOT NULL,
    diff jsonb NOT NULL,
    critical_reasons text[] NOT NULL,
    evidence jsonb NOT NULL,
    status text DEFAULT 'pending'::text NOT NULL,
    decided_by text,
    note text,
    decided_at timestamp with time zone,
    created_at timestamp with time zone DEFAULT clock_timestamp() NOT NULL,
    CONSTRAINT proposals_status_check CHECK ((status = ANY (ARRAY['pending'::text, 'approved'::text, 'rejected'::text, 'superseded'::text])))
);

ALTER TABLE selflearn.proposals ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME selflearn.proposals_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE selflearn.replay_answers (
    id bigint NOT NULL,
    emulator_run_id uuid NOT NULL,
    user_id uuid NOT NULL,
    run_id uuid NOT NULL,
    arm text,
    conversation text NOT NULL,
    question_id text NOT NULL,
    qtype text NOT NULL,
    question text NOT NULL,
    expected text,
    evidence bigint[] NOT NULL,
    budget integer NOT NULL,
    context_hit boolean,
    top_score real,
    context_tokens integer NOT NULL,
    recorded_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT replay_answers_arm_check CHECK ((arm = ANY (ARRAY['baseline'::text, 'variant'::text])))
);

ALTER TABLE selflearn.replay_answers ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME selflearn.replay_answers_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE selflearn.schema_definitions (
    file text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE TABLE selflearn.schema_migrations (
    version integer NOT NULL,
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE TABLE selflearn.sensor_events (
    run_id uuid NOT NULL,
    user_id uuid NOT NULL,
    thread_id uuid,
    client_type text NOT NULL,
    mode text NOT NULL,
    param_version text,
    experiment_arm text,
    status text NOT NULL,
    stop_at text NOT NULL,
    error_class text,
    failed_stage text,
    started_at timestamp with time zone NOT NULL,
    finished_at timestamp with time zone NOT NULL,
    latency_ms double precision NOT NULL,
    queue_ms double precision,
    analyzer_ms double precision,
    assembler_ms double precision,
    responder_ms double precision,
    prompt_tokens integer NOT NULL,
    completion_tokens integer NOT NULL,
    llm_calls integer NOT NULL,
    memories_retrieved integer NOT NULL,
    memories_used integer NOT NULL,
    found_anything boolean NOT NULL,
    context_tokens integer,
    recorded_at timestamp with time zone DEFAULT clock_timestamp() NOT NULL
);

CREATE TABLE selflearn.sensor_retrievals (
    run_id uuid CONSTRAINT sensor_retrievals_1_run_id_not_null NOT NULL,
    memory_ids bigint[] CONSTRAINT sensor_retrievals_1_memory_ids_not_null NOT NULL,
    used boolean[] CONSTRAINT sensor_retrievals_1_used_not_null NOT NULL,
    tokens integer[] CONSTRAINT sensor_retrievals_1_tokens_not_null NOT NULL,
    sources jsonb CONSTRAINT sensor_retrievals_1_sources_not_null NOT NULL
);

CREATE TABLE selflearn.verdicts (
    id bigint NOT NULL,
    experiment_id uuid NOT NULL,
    spec_hash text NOT NULL,
    verdict text NOT NULL,
    reasons text[] NOT NULL,
    recommendations text[] NOT NULL,
    metrics jsonb NOT NULL,
    checks jsonb NOT NULL,
    judge_version text,
    created_at timestamp with time zone DEFAULT clock_timestamp() NOT NULL,
    CONSTRAINT verdicts_verdict_check CHECK ((verdict = ANY (ARRAY['INVALID'::text, 'ROLLBACK'::text, 'SHIP'::text, 'HOLD'::text])))
);

ALTER TABLE selflearn.verdicts ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME selflearn.verdicts_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

ALTER TABLE ONLY selflearn.conversations
    ADD CONSTRAINT conversations_pkey PRIMARY KEY (hash);

ALTER TABLE ONLY selflearn.cycle_experiments
    ADD CONSTRAINT cycle_experiments_pkey PRIMARY KEY (cycle_id, experiment_id);

ALTER TABLE ONLY selflearn.cycles
    ADD CONSTRAINT cycles_pkey PRIMARY KEY (id);

ALTER TABLE ONLY selflearn.emulator_expectations
    ADD CONSTRAINT emulator_expectations_pkey PRIMARY KEY (id);

ALTER TABLE ONLY selflearn.emulator_expectations
    ADD CONSTRAINT emulator_expectations_run_id_key UNIQUE (run_id);

ALTER TABLE ONLY selflearn.emulator_runs
    ADD CONSTRAINT emulator_runs_pkey PRIMARY KEY (id);

ALTER TABLE ONLY selflearn.experiment_parameters
    ADD CONSTRAINT experiment_parameters_label_key UNIQUE (label);

ALTER TABLE ONLY selflearn.experiment_parameters
    ADD CONSTRAINT experiment_parameters_pkey PRIMARY KEY (version);

ALTER TABLE ONLY selflearn.experiments
    ADD CONSTRAINT experiments_pkey PRIMARY KEY (id);

ALTER TABLE ONLY selflearn.goal_measurements
    ADD CONSTRAINT goal_measurements_pkey PRIMARY KEY (id);

ALTER TABLE ONLY selflearn.goals
    ADD CONSTRAINT goals_pkey PRIMARY KEY (id);

ALTER TABLE ONLY selflearn.judgements
    ADD CONSTRAINT judgements_pkey PRIMARY KEY (id);

ALTER TABLE ONLY selflearn.param_pins
    ADD CONSTRAINT param_pins_pkey PRIMARY KEY (subject);

ALTER TABLE ONLY selflearn.parameter_audit
    ADD CONSTRAINT parameter_audit_pkey PRIMARY KEY (id);

ALTER TABLE ONLY selflearn.proposals
    ADD CONSTRAINT proposals_pkey PRIMARY KEY (id);

ALTER TABLE ONLY selflearn.replay_answers
    ADD CONSTRAINT replay_answers_pkey PRIMARY KEY (id);

ALTER TABLE ONLY selflearn.replay_answers
    ADD CONSTRAINT replay_answers_run_id_key UNIQUE (run_id);

ALTER TABLE ONLY selflearn.schema_definitions
    ADD CONSTRAINT schema_definitions_pkey PRIMARY KEY (file);

ALTER TABLE ONLY selflearn.schema_migrations
    ADD CONSTRAINT schema_migrations_pkey PRIMARY KEY (version);

ALTER TABLE ONLY selflearn.sensor_events
    ADD CONSTRAINT sensor_events_pkey PRIMARY KEY (run_id);

ALTER TABLE ONLY selflearn.sensor_retrievals
    ADD CONSTRAINT sensor_retrievals_pkey PRIMARY KEY (run_id);

ALTER TABLE ONLY selflearn.verdicts
    ADD CONSTRAINT verdicts_pkey PRIMARY KEY (id);

CREATE INDEX cycle_experiments_experiment_idx ON selflearn.cycle_experiments USING btree (experiment_id);

CREATE INDEX cycles_goal_idx ON selflearn.cycles USING btree (goal_id);

CREATE UNIQUE INDEX cycles_one_running ON selflearn.cycles USING btree ((true)) WHERE (status = 'running'::text);

CREATE INDEX emulator_expectations_run_idx ON selflearn.emulator_expectations USING btree (emulator_run_id);

CREATE INDEX emulator_expectations_user_idx ON selflearn.emulator_expectations USING btree (user_id);

CREATE INDEX emulator_runs_running_idx ON selflearn.emulator_runs USING btree (heartbeat_at) WHERE (status = 'running'::text);

CREATE UNIQUE INDEX experiment_parameters_one_active ON selflearn.experiment_parameters USING btree ((true)) WHERE active;

CREATE UNIQUE INDEX experiments_one_running ON selflearn.experiments USING btree ((true)) WHERE (status = 'running'::text);

CREATE INDEX goal_measurements_goal_idx ON selflearn.goal_measurements USING btree (goal_id, measured_at);

CREATE INDEX judgements_experiment_idx ON selflearn.judgements USING btree (experiment_id);

CREATE INDEX judgements_run_idx ON selflearn.judgements USING btree (run_id);

CREATE INDEX param_pins_experiment ON selflearn.param_pins USING btree (experiment_id);

CREATE INDEX parameter_audit_experiment_idx ON selflearn.parameter_audit USING btree (experiment_id);

CREATE INDEX proposals_status_idx ON selflearn.proposals USING btree (status);

CREATE INDEX replay_answers_run ON selflearn.replay_answers USING btree (emulator_run_id, arm);

CREATE INDEX replay_answers_user ON selflearn.replay_answers USING btree (user_id);

CREATE INDEX sensor_events_finished_idx ON selflearn.sensor_events USING btree (finished_at);

CREATE INDEX sensor_events_user_idx ON selflearn.sensor_events USING btree (user_id);

CREATE INDEX verdicts_experiment_idx ON selflearn.verdicts USING btree (experiment_id);

CREATE TRIGGER experiments_freeze_spec BEFORE UPDATE ON selflearn.experiments FOR EACH ROW EXECUTE FUNCTION selflearn.freeze_spec();

ALTER TABLE ONLY selflearn.cycle_experiments
    ADD CONSTRAINT cycle_experiments_cycle_id_fkey FOREIGN KEY (cycle_id) REFERENCES selflearn.cycles(id) ON DELETE CASCADE;

ALTER TABLE ONLY selflearn.cycle_experiments
    ADD CONSTRAINT cycle_experiments_experiment_id_fkey FOREIGN KEY (experiment_id) REFERENCES selflearn.experiments(id) ON DELETE CASCADE;

ALTER TABLE ONLY selflearn.cycles
    ADD CONSTRAINT cycles_goal_id_fkey FOREIGN KEY (goal_id) REFERENCES selflearn.goals(id) ON DELETE SET NULL;

ALTER TABLE ONLY selflearn.emulator_expectations
    ADD CONSTRAINT emulator_expectations_emulator_run_id_fkey FOREIGN KEY (emulator_run_id) REFERENCES selflearn.emulator_runs(id) ON DELETE CASCADE;

ALTER TABLE ONLY selflearn.emulator_expectations
    ADD CONSTRAINT emulator_expectations_user_id_fkey FOREIGN KEY (user_id) REFERENCES maas.users(id) ON DELETE CASCADE;

ALTER TABLE ONLY selflearn.experiment_parameters
    ADD CONSTRAINT experiment_parameters_experiment_id_fkey FOREIGN KEY (experiment_id) REFERENCES selflearn.experiments(id) ON DELETE SET NULL;

ALTER TABLE ONLY selflearn.experiment_parameters
    ADD CONSTRAINT experiment_parameters_parent_fkey FOREIGN KEY (parent) REFERENCES selflearn.experiment_parameters(version);

ALTER TABLE ONLY selflearn.experiments
    ADD CONSTRAINT experiments_baseline_emulator_run_fkey FOREIGN KEY (baseline_emulator_run) REFERENCES selflearn.emulator_runs(id) ON DELETE SET NULL;

ALTER TABLE ONLY selflearn.experiments
    ADD CONSTRAINT experiments_variant_emulator_run_fkey FOREIGN KEY (variant_emulator_run) REFERENCES selflearn.emulator_runs(id) ON DELETE SET NULL;

ALTER TABLE ONLY selflearn.goal_measurements
    ADD CONSTRAINT goal_measurements_cycle_id_fkey FOREIGN KEY (cycle_id) REFERENCES selflearn.cycles(id) ON DELETE SET NULL;

ALTER TABLE ONLY selflearn.goal_measurements
    ADD CONSTRAINT goal_measurements_goal_id_fkey FOREIGN KEY (goal_id) REFERENCES selflearn.goals(id) ON DELETE CASCADE;

ALTER TABLE ONLY selflearn.judgements
    ADD CONSTRAINT judgements_experiment_id_fkey FOREIGN KEY (experiment_id) REFERENCES selflearn.experiments(id) ON DELETE CASCADE;

ALTER TABLE ONLY selflearn.judgements
    ADD CONSTRAINT judgements_user_id_fkey FOREIGN KEY (user_id) REFERENCES maas.users(id) ON DELETE CASCADE;

ALTER TABLE ONLY selflearn.param_pins
    ADD CONSTRAINT param_pins_experiment_id_fkey FOREIGN KEY (experiment_id) REFERENCES selflearn.experiments(id) ON DELETE CASCADE;

ALTER TABLE ONLY selflearn.param_pins
    ADD CONSTRAINT param_pins_version_fkey FOREIGN KEY (version) REFERENCES selflearn.experiment_parameters(version);

ALTER TABLE ONLY selflearn.parameter_audit
    ADD CONSTRAINT parameter_audit_experiment_id_fkey FOREIGN KEY (experiment_id) REFERENCES selflearn.experiments(id) ON DELETE SET NULL;

ALTER TABLE ONLY selflearn.parameter_audit
    ADD CONSTRAINT parameter_audit_previous_version_fkey FOREIGN KEY (previous_version) REFERENCES selflearn.experiment_parameters(version);

ALTER TABLE ONLY selflearn.parameter_audit
    ADD CONSTRAINT parameter_audit_version_fkey FOREIGN KEY (version) REFERENCES selflearn.experiment_parameters(version);

ALTER TABLE ONLY selflearn.proposals
    ADD CONSTRAINT proposals_cycle_id_fkey FOREIGN KEY (cycle_id) REFERENCES selflearn.cycles(id) ON DELETE SET NULL;

ALTER TABLE ONLY selflearn.proposals
    ADD CONSTRAINT proposals_experiment_id_fkey FOREIGN KEY (experiment_id) REFERENCES selflearn.experiments(id) ON DELETE SET NULL;

ALTER TABLE ONLY selflearn.proposals
    ADD CONSTRAINT proposals_goal_id_fkey FOREIGN KEY (goal_id) REFERENCES selflearn.goals(id) ON DELETE SET NULL;

ALTER TABLE ONLY selflearn.proposals
    ADD CONSTRAINT proposals_version_fkey FOREIGN KEY (version) REFERENCES selflearn.experiment_parameters(version);

ALTER TABLE ONLY selflearn.replay_answers
    ADD CONSTRAINT replay_answers_emulator_run_id_fkey FOREIGN KEY (emulator_run_id) REFERENCES selflearn.emulator_runs(id) ON DELETE CASCADE;

ALTER TABLE ONLY selflearn.replay_answers
    ADD CONSTRAINT replay_answers_user_id_fkey FOREIGN KEY (user_id) REFERENCES maas.users(id) ON DELETE CASCADE;

ALTER TABLE ONLY selflearn.sensor_events
    ADD CONSTRAINT sensor_events_user_id_fkey FOREIGN KEY (user_id) REFERENCES maas.users(id) ON DELETE CASCADE;

ALTER TABLE ONLY selflearn.sensor_retrievals
    ADD CONSTRAINT sensor_retrievals_run_id_fkey FOREIGN KEY (run_id) REFERENCES selflearn.sensor_events(run_id) ON DELETE CASCADE;

ALTER TABLE ONLY selflearn.verdicts
    ADD CONSTRAINT verdicts_experiment_id_fkey FOREIGN KEY (experiment_id) REFERENCES selflearn.experiments(id) ON DELETE CASCADE;
