//! How the domain's values are read from and written to rows. The domain stays free of sqlx;
//! these impls live here. Enums are stored by name (the queries cast the database enums to
//! `text`), and a name the domain does not know is a decoding error, never a default.

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef};
use sqlx::{Decode, Encode, Postgres, Type};

use crate::domain::Channel;
use crate::domain::money::Cents;
use crate::domain::stages::{JobStatus, OutboxChannel, OutboxKind, QuoteStatus, Stage};

/// Implements `Type`, `Decode` and `Encode` for enums that parse from and print as text.
macro_rules! by_name {
    ($($t:ty),+ $(,)?) => {$(
        impl Type<Postgres> for $t {
            fn type_info() -> PgTypeInfo {
                <&str as Type<Postgres>>::type_info()
            }
            fn compatible(ty: &PgTypeInfo) -> bool {
                <&str as Type<Postgres>>::compatible(ty)
            }
        }

        impl<'r> Decode<'r, Postgres> for $t {
            fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
                let name = <&str as Decode<Postgres>>::decode(value)?;
                Ok(name.parse::<$t>()?)
            }
        }

        impl Encode<'_, Postgres> for $t {
            fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
                <&str as Encode<Postgres>>::encode(self.as_str(), buf)
            }
        }
    )+};
}

by_name!(
    Channel,
    Stage,
    JobStatus,
    QuoteStatus,
    OutboxChannel,
    OutboxKind
);

/// Cents are read from `bigint` columns (the queries compute `(total * 100)::bigint`).
impl Type<Postgres> for Cents {
    fn type_info() -> PgTypeInfo {
        <i64 as Type<Postgres>>::type_info()
    }
    fn compatible(ty: &PgTypeInfo) -> bool {
        <i64 as Type<Postgres>>::compatible(ty)
    }
}

impl<'r> Decode<'r, Postgres> for Cents {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        Ok(Cents::new(<i64 as Decode<Postgres>>::decode(value)?))
    }
}

impl Encode<'_, Postgres> for Cents {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <i64 as Encode<Postgres>>::encode(self.get(), buf)
    }
}
