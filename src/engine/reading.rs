//! Reading one number from a query answer, the one way every part of the engine does it:
//! exactly one series with a finite value is a number; no series, NaN/Inf or a partial
//! response (warnings) is no data; more than one series or a failed query is an error.
//!
//! Owns: [`Reading`] and [`one_value`]. Must not touch: what the number means.

use crate::ports::{InstantSample, MetricsError, MetricsSource, UnixSeconds};

/// What a query answered, for code that needs one number.
#[derive(Clone, Debug, PartialEq)]
pub enum Reading {
    /// One series, one finite value.
    Value(f64),
    /// Nothing to decide on; the reason says why.
    NoData(String),
    /// The query failed or answered something that cannot be one SLO's number.
    Failed(String),
}

impl Reading {
    pub fn value(&self) -> Option<f64> {
        match self {
            Reading::Value(v) => Some(*v),
            _ => None,
        }
    }
}

/// Reduces a query's answer to one [`Reading`].
pub fn one_value(answer: Result<Vec<InstantSample>, MetricsError>) -> Reading {
    match answer {
        Ok(samples) => match samples.as_slice() {
            [] => Reading::NoData("no series".into()),
            [one] if one.value.is_finite() => Reading::Value(one.value),
            [one] => Reading::NoData(format!("the value is {}", one.value)),
            many => Reading::Failed(format!(
                "{} series where one was expected; the query must aggregate to one series (wrap it in sum())",
                many.len()
            )),
        },
        Err(MetricsError::PartialResponse(warnings)) => {
            Reading::NoData(format!("partial response ({warnings})"))
        }
        Err(error) => Reading::Failed(error.to_string()),
    }
}

/// Queries `expr` at `at` and reduces the answer to one [`Reading`].
pub async fn read_one<M: MetricsSource>(source: &M, expr: &str, at: UnixSeconds) -> Reading {
    one_value(source.instant(expr, at).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(value: f64) -> InstantSample {
        InstantSample {
            labels: Default::default(),
            value,
        }
    }

    #[test]
    fn only_one_finite_sample_is_a_number() {
        let cases: Vec<(Result<Vec<InstantSample>, MetricsError>, &str)> = vec![
            (Ok(vec![sample(0.25)]), "value"),
            (Ok(vec![]), "no data"),
            (Ok(vec![sample(f64::NAN)]), "no data"),
            (Ok(vec![sample(f64::INFINITY)]), "no data"),
            (Ok(vec![sample(f64::NEG_INFINITY)]), "no data"),
            (
                Err(MetricsError::PartialResponse("store down".into())),
                "no data",
            ),
            (Ok(vec![sample(0.1), sample(0.2)]), "failed"),
            (Err(MetricsError::Timeout { seconds: 5 }), "failed"),
            (Err(MetricsError::Rejected("HTTP 500".into())), "failed"),
        ];
        for (answer, expected) in cases {
            let what = format!("{answer:?}");
            let kind = match one_value(answer) {
                Reading::Value(v) => {
                    assert_eq!(v, 0.25);
                    "value"
                }
                Reading::NoData(_) => "no data",
                Reading::Failed(_) => "failed",
            };
            assert_eq!(kind, expected, "{what}");
        }
    }
}
