-- Vendor-risk register: the example data `warden init` creates.
CREATE TABLE vendors (
    id            TEXT PRIMARY KEY,            -- V-001
    name          TEXT NOT NULL UNIQUE,
    category      TEXT NOT NULL,
    tier          TEXT NOT NULL CHECK (tier IN ('critical', 'high', 'medium', 'low')),
    status        TEXT NOT NULL CHECK (status IN ('active', 'onboarding', 'offboarded')),
    country       TEXT NOT NULL,
    owner_email   TEXT NOT NULL,
    data_access   TEXT NOT NULL CHECK (data_access IN ('none', 'internal', 'confidential', 'restricted')),
    annual_spend  INTEGER NOT NULL,            -- whole euros
    contract_end  TEXT NOT NULL,               -- YYYY-MM-DD
    risk_score    INTEGER NOT NULL CHECK (risk_score BETWEEN 0 AND 100)
);

CREATE TABLE assessments (
    id           INTEGER PRIMARY KEY,
    vendor_id    TEXT NOT NULL REFERENCES vendors(id),
    kind         TEXT NOT NULL,
    assessed_on  TEXT NOT NULL,
    assessor     TEXT NOT NULL,
    rating       TEXT NOT NULL CHECK (rating IN ('pass', 'conditional', 'fail')),
    score        INTEGER NOT NULL
);

CREATE TABLE findings (
    id             INTEGER PRIMARY KEY,
    assessment_id  INTEGER NOT NULL REFERENCES assessments(id),
    vendor_id      TEXT NOT NULL REFERENCES vendors(id),
    title          TEXT NOT NULL,
    severity       TEXT NOT NULL CHECK (severity IN ('critical', 'high', 'medium', 'low')),
    status         TEXT NOT NULL CHECK (status IN ('open', 'in_progress', 'remediated', 'risk_accepted')),
    opened_on      TEXT NOT NULL,
    due_on         TEXT NOT NULL,
    closed_on      TEXT,
    note           TEXT
);

CREATE TABLE obligations (
    id           INTEGER PRIMARY KEY,
    vendor_id    TEXT NOT NULL REFERENCES vendors(id),
    framework    TEXT NOT NULL,
    requirement  TEXT NOT NULL,
    due_on       TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('met', 'pending', 'overdue'))
);

CREATE INDEX findings_vendor ON findings(vendor_id, status);
CREATE INDEX assessments_vendor ON assessments(vendor_id);
CREATE INDEX obligations_vendor ON obligations(vendor_id);
