ALTER TABLE files DROP COLUMN source_encoding;
