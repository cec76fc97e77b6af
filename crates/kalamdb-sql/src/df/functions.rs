//! KalamDB's SQL functions for DataFusion: `SNOWFLAKE_ID()` and `UUID_V7()`.
//!
//! Both are volatile: every row gets its own value. `SNOWFLAKE_ID()` draws from the same
//! [`SeqGenerator`] as row versions, so ids are unique and increasing across the server.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, StringArray};
use arrow::datatypes::DataType as ArrowType;
use datafusion::common::Result as DfResult;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use kalamdb_core::SeqGenerator;

/// `SNOWFLAKE_ID()`: a unique, time-ordered BIGINT.
#[derive(Debug)]
pub struct SnowflakeId {
    seq: Arc<SeqGenerator>,
    signature: Signature,
}

impl PartialEq for SnowflakeId {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for SnowflakeId {}
impl std::hash::Hash for SnowflakeId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        "snowflake_id".hash(state)
    }
}

impl ScalarUDFImpl for SnowflakeId {
    fn name(&self) -> &str {
        "snowflake_id"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[ArrowType]) -> DfResult<ArrowType> {
        Ok(ArrowType::Int64)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let ids: Int64Array = (0..args.number_rows)
            .map(|_| Some(self.seq.next() as i64))
            .collect();
        Ok(ColumnarValue::Array(Arc::new(ids) as ArrayRef))
    }
}

/// `UUID_V7()`: a time-ordered UUID as canonical text.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct UuidV7 {
    signature: Signature,
}

impl ScalarUDFImpl for UuidV7 {
    fn name(&self) -> &str {
        "uuid_v7"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[ArrowType]) -> DfResult<ArrowType> {
        Ok(ArrowType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let ids: StringArray = (0..args.number_rows)
            .map(|_| Some(uuid::Uuid::now_v7().hyphenated().to_string()))
            .collect();
        Ok(ColumnarValue::Array(Arc::new(ids) as ArrayRef))
    }
}

pub fn snowflake_id_udf(seq: Arc<SeqGenerator>) -> ScalarUDF {
    ScalarUDF::new_from_impl(SnowflakeId {
        seq,
        signature: Signature::nullary(Volatility::Volatile),
    })
}

pub fn uuid_v7_udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(UuidV7 {
        signature: Signature::nullary(Volatility::Volatile),
    })
}
