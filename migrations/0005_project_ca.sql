-- A project may hold its server's CA certificate (PEM, public): with it,
-- connections verify the server (verify-full) in-process and for libpq tools.
ALTER TABLE projects ADD COLUMN ca_cert TEXT CHECK (ca_cert IS NULL OR length(ca_cert) <= 1048576);
