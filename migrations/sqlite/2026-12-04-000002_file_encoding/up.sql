-- The text encoding an uploaded subtitle file was in (`windows-1252`, `UTF-16LE`, `UTF-8`,
-- …: WHATWG names). The stored bytes are always UTF-8; NULL for media files and job
-- outputs.
ALTER TABLE files ADD COLUMN source_encoding TEXT;
