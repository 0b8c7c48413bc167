-- Back to migration 10: console users, sessions and login attempts go.

DROP TABLE "LoginAttempt";
DROP TABLE "ConsoleSession";
DROP TABLE "ConsoleUser";
