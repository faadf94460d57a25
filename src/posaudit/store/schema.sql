-- posaudit store schema. The one definition of every table; version in posaudit_meta.
-- IDs are VARCHAR, money BIGINT fen, timestamps merchant-local TIMESTAMP.
-- Categorical columns are ENUMs: DuckDB rejects a value outside the contract at write time.

CREATE TYPE fee_class_t AS ENUM ('standard', 'discount', 'charity');
CREATE TYPE role_t AS ENUM ('admin', 'clerk');
CREATE TYPE pin_event_kind_t AS ENUM ('initial', 'change', 'reset');
CREATE TYPE pin_actor_t AS ENUM ('self', 'admin', 'service_desk', 'acquirer');
CREATE TYPE login_outcome_t AS ENUM ('success', 'wrong_pin', 'unknown_operator', 'locked', 'network_error');
CREATE TYPE unlock_method_t AS ENUM ('timeout', 'admin', 'service_desk');
CREATE TYPE txn_kind_t AS ENUM ('sale', 'void', 'refund', 'transfer');
CREATE TYPE channel_t AS ENUM ('debit_card', 'credit_card', 'alipay_qr', 'wechat_qr', 'unionpay_qr', 'account');
CREATE TYPE txn_status_t AS ENUM ('approved', 'declined', 'failed');
CREATE TYPE failure_reason_t AS ENUM (
    'insufficient_funds', 'card_expired', 'issuer_unavailable',
    'insufficient_balance', 'wrong_parameters', 'system_fault',
    'wrong_account', 'amount_not_allowed', 'past_refund_window'
);
CREATE TYPE entity_type_t AS ENUM ('terminal', 'operator', 'merchant', 'transaction', 'card');
CREATE TYPE severity_t AS ENUM ('info', 'low', 'medium', 'high', 'critical');
CREATE TYPE run_status_t AS ENUM ('running', 'succeeded', 'failed');
CREATE TYPE operator_event_kind_t AS ENUM ('added', 'deleted', 'granted', 'revoked');
CREATE TYPE permission_t AS ENUM ('query', 'sale', 'refund', 'transfer', 'manage');

CREATE TABLE posaudit_meta (
    key VARCHAR PRIMARY KEY,
    value VARCHAR NOT NULL
);

-- One row per `posaudit simulate` call that wrote into this store.
CREATE TABLE simulations (
    simulation_id INTEGER PRIMARY KEY,
    created_at TIMESTAMP NOT NULL,
    seed BIGINT NOT NULL,
    start_date DATE NOT NULL,
    first_day INTEGER NOT NULL,      -- day offset from the world's start date
    days INTEGER NOT NULL,
    merchants INTEGER NOT NULL,
    fraud BOOLEAN NOT NULL,
    scenario_toml VARCHAR NOT NULL,
    events BIGINT NOT NULL,
    seconds DOUBLE NOT NULL,
    code_version VARCHAR NOT NULL
);

CREATE TABLE merchants (
    merchant_id VARCHAR PRIMARY KEY,
    name VARCHAR NOT NULL,
    category VARCHAR NOT NULL,
    fee_class fee_class_t NOT NULL,
    discount_rate_bp INTEGER,        -- basis points of 0.01 %, set for discount-class merchants
    city VARCHAR NOT NULL,
    opens_at TIME NOT NULL,
    closes_at TIME NOT NULL,         -- 23:59:59 for merchants open around the clock
    is_24h BOOLEAN NOT NULL
);

CREATE TABLE terminals (
    terminal_id VARCHAR PRIMARY KEY,
    merchant_id VARCHAR NOT NULL,
    model VARCHAR NOT NULL,
    family VARCHAR NOT NULL,         -- 'esign' (electronic-signature POS) or 'smart'
    installed_at TIMESTAMP NOT NULL,
    lockout_threshold INTEGER,       -- NULL: the terminal never locks an operator
    lockout_minutes INTEGER
);

CREATE TABLE operators (
    operator_id VARCHAR PRIMARY KEY,
    terminal_id VARCHAR NOT NULL,
    merchant_id VARCHAR NOT NULL,
    operator_no VARCHAR NOT NULL,
    name VARCHAR NOT NULL,
    role role_t NOT NULL,
    can_query BOOLEAN NOT NULL,
    can_sale BOOLEAN NOT NULL,
    can_refund BOOLEAN NOT NULL,
    can_transfer BOOLEAN NOT NULL,
    can_manage BOOLEAN NOT NULL,
    created_at TIMESTAMP NOT NULL,
    disabled_at TIMESTAMP
);

CREATE TABLE pin_events (
    event_id VARCHAR NOT NULL,
    ts TIMESTAMP NOT NULL,
    operator_id VARCHAR NOT NULL,
    kind pin_event_kind_t NOT NULL,
    pin_digest VARCHAR NOT NULL,     -- hex HMAC-SHA256 under the deployment key; never a PIN
    actor pin_actor_t NOT NULL
);

CREATE TABLE login_events (
    event_id VARCHAR NOT NULL,
    ts TIMESTAMP NOT NULL,
    terminal_id VARCHAR NOT NULL,
    operator_no VARCHAR NOT NULL,    -- as typed
    operator_id VARCHAR,             -- NULL when no such operator
    outcome login_outcome_t NOT NULL
);

CREATE TABLE lockouts (
    lockout_id VARCHAR NOT NULL,
    terminal_id VARCHAR NOT NULL,
    operator_id VARCHAR NOT NULL,
    locked_at TIMESTAMP NOT NULL,
    unlocked_at TIMESTAMP,
    unlock_method unlock_method_t
);

CREATE TABLE transactions (
    txn_id VARCHAR NOT NULL,
    ts TIMESTAMP NOT NULL,
    terminal_id VARCHAR NOT NULL,
    merchant_id VARCHAR NOT NULL,
    operator_id VARCHAR NOT NULL,
    kind txn_kind_t NOT NULL,
    channel channel_t NOT NULL,
    amount_fen BIGINT NOT NULL,
    fee_fen BIGINT NOT NULL,
    card_token VARCHAR,
    account_ref VARCHAR,             -- keyed token of the card's Payment Account Reference
    original_txn_id VARCHAR,
    trace_no INTEGER NOT NULL,
    batch_no INTEGER NOT NULL,
    status txn_status_t NOT NULL,
    failure_reason failure_reason_t
);

-- Operator management: an operator added or deleted, a permission granted or revoked, and who
-- did it. The operators table is the latest state; this is its history.
CREATE TABLE operator_events (
    event_id VARCHAR NOT NULL,
    ts TIMESTAMP NOT NULL,
    operator_id VARCHAR NOT NULL,
    kind operator_event_kind_t NOT NULL,
    permission permission_t,         -- granted and revoked only
    actor pin_actor_t NOT NULL,      -- who made the change: an administrator, the service desk...
    actor_operator_id VARCHAR        -- the administrator's operator, when actor = 'admin'
);

-- A terminal's own count of a batch when it settles it: what the records of the batch must add
-- up to. Counts and sums are over approved records.
CREATE TABLE batch_totals (
    batch_id VARCHAR NOT NULL,       -- terminal_id:batch_no
    terminal_id VARCHAR NOT NULL,
    merchant_id VARCHAR NOT NULL,
    batch_no INTEGER NOT NULL,
    settled_at TIMESTAMP NOT NULL,
    txn_count BIGINT NOT NULL,
    first_trace INTEGER,
    last_trace INTEGER,
    sale_amount_fen BIGINT NOT NULL,
    void_amount_fen BIGINT NOT NULL,
    refund_amount_fen BIGINT NOT NULL,
    fee_fen BIGINT NOT NULL
);

-- Labels of injected incidents. Read by evaluation only, never by detection.
CREATE TABLE ground_truth (
    incident_id VARCHAR NOT NULL,
    scenario VARCHAR NOT NULL,
    entity_type entity_type_t NOT NULL,
    entity_id VARCHAR NOT NULL,
    start_ts TIMESTAMP NOT NULL,
    end_ts TIMESTAMP NOT NULL
);

CREATE TABLE pipeline_runs (
    run_id VARCHAR PRIMARY KEY,
    started_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP,
    status run_status_t NOT NULL,
    mode VARCHAR NOT NULL,           -- 'full' or 'incremental'
    engine VARCHAR NOT NULL,         -- 'local' or 'spark'
    data_from TIMESTAMP,             -- the window of event time the run read
    data_to TIMESTAMP,
    watermark TIMESTAMP,             -- latest event time seen; the next incremental run starts here
    rows_read BIGINT,
    findings_total INTEGER,
    findings_new INTEGER,
    findings_seen INTEGER,
    findings_resolved INTEGER,
    policy_hash VARCHAR,
    policy_toml VARCHAR,
    code_version VARCHAR NOT NULL,
    seconds DOUBLE,
    error VARCHAR
);

CREATE TABLE findings (
    finding_id VARCHAR PRIMARY KEY,  -- deterministic: rule, entity and window
    run_id VARCHAR NOT NULL,         -- the latest run that produced it
    first_run_id VARCHAR NOT NULL,
    rule VARCHAR NOT NULL,
    family VARCHAR NOT NULL,
    severity severity_t NOT NULL,
    score DOUBLE NOT NULL,
    entity_type entity_type_t NOT NULL,
    entity_id VARCHAR NOT NULL,
    merchant_id VARCHAR,
    window_start TIMESTAMP NOT NULL,
    window_end TIMESTAMP,            -- none: a state still held at the data's end (a PIN)
    summary VARCHAR NOT NULL,
    evidence JSON NOT NULL,
    status VARCHAR NOT NULL,         -- 'open' or 'resolved'
    resolved_run_id VARCHAR
);

-- One row per file an ingest loaded. A file already loaded (the same bytes) is not read again.
CREATE TABLE ingested_files (
    ingest_id VARCHAR NOT NULL,      -- 'ingest-00001', one per `posaudit ingest` command
    fingerprint VARCHAR NOT NULL,    -- sha256 of the file's bytes
    file_name VARCHAR NOT NULL,      -- as given, for the report's provenance
    bytes BIGINT NOT NULL,
    mapping VARCHAR NOT NULL,        -- the mapping's name
    target_table VARCHAR NOT NULL,
    rows_read BIGINT NOT NULL,
    rows_loaded BIGINT NOT NULL,     -- new rows written
    rows_duplicate BIGINT NOT NULL,  -- valid rows already in the store (same natural key)
    rows_quarantined BIGINT NOT NULL,
    cards_in_clear BIGINT NOT NULL,  -- full card numbers that arrived and were tokenised
    ingested_at TIMESTAMP NOT NULL
);

-- Rows an ingest could not trust: never loaded, kept with the reason.
CREATE TABLE quarantine (
    ingest_id VARCHAR NOT NULL,
    fingerprint VARCHAR NOT NULL,
    file_name VARCHAR NOT NULL,
    source_line BIGINT NOT NULL,
    target_table VARCHAR NOT NULL,
    reason VARCHAR NOT NULL,         -- a reason code (docs/ingest.md)
    detail VARCHAR NOT NULL,         -- the column and value in words (card numbers masked)
    raw_row VARCHAR NOT NULL         -- the source row as JSON, card numbers masked
);

-- The analysts' review trail: append-only, nothing updated or deleted. A finding's current
-- review is its row with the highest review_id. Each row carries the digest of the row before
-- it and its own: sha256 over that digest and the row's fields (docs/review.md), so an edited,
-- deleted or inserted row breaks the chain where it happened (`posaudit review verify`).
CREATE TYPE review_status_t AS ENUM ('open', 'in_review', 'closed');
CREATE TYPE review_decision_t AS ENUM (
    'confirmed_fraud', 'policy_breach', 'false_positive', 'benign_explained'
);
CREATE TABLE finding_reviews (
    review_id BIGINT PRIMARY KEY,    -- 1, 2, 3...: the order of the chain
    reviewed_at TIMESTAMP NOT NULL,  -- UTC
    analyst VARCHAR NOT NULL,        -- $POSAUDIT_ANALYST, else the OS user
    finding_id VARCHAR,              -- the finding reviewed; NULL for a review of a case
    case_id VARCHAR,                 -- the case reviewed, or through which a finding was
    status review_status_t NOT NULL,
    decision review_decision_t,      -- NULL while undecided
    assignee VARCHAR,
    note VARCHAR,
    evidence_events BIGINT,          -- events in the finding's evidence when it was decided
    request_id VARCHAR,              -- a decision queued while the store was held: its request
    previous_digest VARCHAR NOT NULL,  -- the digest of review_id - 1 (64 zeros for the first)
    digest VARCHAR NOT NULL
);

-- Snoozes: one entity's findings of one rule (or of every rule, rule NULL) count for nothing
-- in alerts and the report's headline until `until`. Append-only and chained like the
-- reviews; the latest row for an entity and rule is the one in force (a lift ends it now).
CREATE TABLE review_snoozes (
    snooze_id BIGINT PRIMARY KEY,
    created_at TIMESTAMP NOT NULL,   -- UTC
    analyst VARCHAR NOT NULL,
    entity_type VARCHAR NOT NULL,
    entity_id VARCHAR NOT NULL,
    rule VARCHAR,                    -- NULL: every rule
    until TIMESTAMP NOT NULL,        -- UTC; at most 180 days after created_at
    reason VARCHAR NOT NULL,
    previous_digest VARCHAR NOT NULL,
    digest VARCHAR NOT NULL
);
