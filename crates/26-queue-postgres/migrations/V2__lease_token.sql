-- Which lease call took an in-flight job. A node whose lease statement committed while its
-- connection broke never learns that it holds those jobs; it remembers the token of the call
-- that failed and requeues the jobs carrying it once the database answers again, instead of
-- leaving them in flight until the watchdog's stale-lease limit (minutes).
ALTER TABLE jobs ADD COLUMN lease_token bigint;
