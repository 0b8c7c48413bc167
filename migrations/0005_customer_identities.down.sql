-- Back to migration 4: the identities and challenges go (customers keep their phone and email).

DROP TABLE "IdentityChallenge";
DROP TABLE "CustomerIdentity";
DROP TYPE "IdentityKind";
