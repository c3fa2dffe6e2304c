-- Counter rows are written by every admission batch: the hot ones (a calling app's, a
-- destination prefix's) once per batch, and two fresh rows per new phone. The index on
-- `expires_at` served only the five-minute sweep, yet made each of those writes a second index
-- entry and kept the hot rows' updates from being HOT (heap-only, no index entry at all) however
-- much room 0006's fillfactor left on their page. The sweep now reads the table instead.
DROP INDEX IF EXISTS rate_counters_expires;
