-- When Warden last answered a call on this grant's token with a step-up challenge
-- (403 insufficient_scope). A refresh cannot widen a grant's scopes, so refreshes soon after
-- a challenge are answered invalid_grant: the client then starts a new authorization, where
-- the person can allow the wider scope. Cleared when the person answers it.
ALTER TABLE grants ADD COLUMN step_up_at INTEGER NULL;
