-- Clients identified by a Client ID Metadata Document: their client_id is the document's
-- https URL, kept here beside the internal id grants and tokens refer to. A row is made when
-- a person first approves such a client, and its name and redirect URIs follow the
-- document each time it is fetched again.
-- Keep in step with ../postgres/0016_client_documents.sql.
ALTER TABLE oauth_clients ADD COLUMN metadata_url TEXT NULL;
CREATE UNIQUE INDEX oauth_clients_metadata_url ON oauth_clients (metadata_url);
