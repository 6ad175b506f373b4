DROP TABLE jobs;
DROP TABLE transcripts;
DROP TABLE files;
DROP TABLE profiles;
