//! Prometheus (or Thanos, Mimir, VictoriaMetrics: anything with the Prometheus query API) as a
//! [`MetricsSource`]: the query API's two endpoints spoken directly over a rustls `reqwest`
//! client, so that nothing of an answer (its `warnings` above all) is lost in translation.
//!
//! Owns: connection settings (base URL, extra headers such as `X-Scope-OrgID`, bearer or basic
//! auth, timeout), mapping answers to port types and failures to [`MetricsError`].
//! Must not touch: what the numbers mean.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};

use crate::ports::{
    InstantSample, MetricsError, MetricsSource, RangeSeries, SeriesLabels, UnixSeconds,
};

/// How to reach the query API. Secrets never appear in `Debug`.
#[derive(Clone)]
pub struct PrometheusConfig {
    /// Base URL, e.g. `http://prometheus:9090` or `http://mimir/prometheus`.
    pub url: String,
    /// Extra request headers, e.g. `X-Scope-OrgID: tenant-a` for Mimir.
    pub headers: Vec<(String, String)>,
    pub bearer_token: Option<SecretString>,
    /// User and password for basic auth.
    pub basic_auth: Option<(String, SecretString)>,
    /// Per-query timeout, on the client and passed to Prometheus.
    pub timeout: Duration,
}

impl PrometheusConfig {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            headers: Vec::new(),
            bearer_token: None,
            basic_auth: None,
            timeout: Duration::from_secs(10),
        }
    }
}

impl fmt::Debug for PrometheusConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrometheusConfig")
            .field("url", &crate::redact::credentials(&self.url))
            .field(
                "headers",
                &self.headers.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .field(
                "bearer_token",
                &self.bearer_token.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "basic_auth",
                &self.basic_auth.as_ref().map(|(u, _)| (u, "<redacted>")),
            )
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Why a client could not be built from its settings.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("prometheus URL `{url}` is not usable: {reason}")]
    Url { url: String, reason: String },
    #[error("header `{name}` is not a valid HTTP header: {reason}")]
    Header { name: String, reason: String },
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// A query client for one Prometheus-compatible endpoint.
#[derive(Clone)]
pub struct Prometheus {
    http: reqwest::Client,
    /// `<base>/api/v1/`, with the base's own path kept (`http://mimir/prometheus`).
    api: reqwest::Url,
    timeout: Duration,
}

impl fmt::Debug for Prometheus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prometheus")
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Installs rustls' ring provider once per process; every HTTP client needs it first.
pub fn install_crypto_provider() {
    // An error only means a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl Prometheus {
    pub fn new(config: &PrometheusConfig) -> Result<Self, ConfigError> {
        install_crypto_provider();
        let mut headers = HeaderMap::new();
        for (name, value) in &config.headers {
            let header_error = |reason: String| ConfigError::Header {
                name: name.clone(),
                reason,
            };
            let name =
                HeaderName::try_from(name.as_str()).map_err(|e| header_error(e.to_string()))?;
            let mut value =
                HeaderValue::try_from(value.as_str()).map_err(|e| header_error(e.to_string()))?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        let authorization = match (&config.bearer_token, &config.basic_auth) {
            (Some(token), _) => Some(format!("Bearer {}", token.expose_secret())),
            (None, Some((user, password))) => Some(format!(
                "Basic {}",
                BASE64.encode(format!("{user}:{}", password.expose_secret()))
            )),
            (None, None) => None,
        };
        if let Some(authorization) = authorization {
            let mut value =
                HeaderValue::try_from(authorization).map_err(|e| ConfigError::Header {
                    name: "Authorization".into(),
                    reason: e.to_string(),
                })?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(5)))
            .build()
            .map_err(|e| ConfigError::Client(e.to_string()))?;
        let url_error = |reason: String| ConfigError::Url {
            url: crate::redact::credentials(&config.url),
            reason,
        };
        let mut api = reqwest::Url::parse(&config.url).map_err(|e| url_error(e.to_string()))?;
        if !matches!(api.scheme(), "http" | "https") || api.cannot_be_a_base() {
            return Err(url_error("expected an http:// or https:// URL".into()));
        }
        let path = format!("{}/api/v1/", api.path().trim_end_matches('/'));
        api.set_path(&path);
        Ok(Self {
            http,
            api,
            timeout: config.timeout,
        })
    }

    /// POSTs a query form to `endpoint` and returns the `data` of a successful answer.
    /// An answer carrying `warnings` (Thanos' and Mimir's partial responses, a Prometheus
    /// that could not read all of its data) is [`MetricsError::PartialResponse`]: its numbers
    /// may be missing series, so they are not used.
    async fn post(
        &self,
        endpoint: &str,
        form: &[(&str, String)],
    ) -> Result<(u16, impl AsRef<[u8]> + Send + 'static), MetricsError> {
        let url = self
            .api
            .join(endpoint)
            .map_err(|e| MetricsError::BadResponse(e.to_string()))?;
        let response = self
            .http
            .post(url)
            .form(form)
            .send()
            .await
            .map_err(|e| self.transport_error(&e))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(&e))?;
        Ok((status.as_u16(), body))
    }

    fn transport_error(&self, error: &reqwest::Error) -> MetricsError {
        if error.is_timeout() {
            MetricsError::Timeout {
                seconds: self.timeout.as_secs(),
            }
        } else if error.is_connect() || error.is_request() {
            MetricsError::Unreachable(error_chain(error))
        } else {
            MetricsError::BadResponse(error_chain(error))
        }
    }
}

/// The error and its causes, credentials in URLs masked (the text is logged and stored).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    crate::redact::credentials(&text)
}

/// Answers at least this large are read on a blocking thread (256 KiB: about 4,000 series
/// of one label); smaller ones are read where they arrive, cheaper than a thread hop.
const PARSE_APART_BYTES: usize = 256 * 1024;

/// The query API's envelope (`/api/v1/query`, `/api/v1/query_range`).
#[derive(serde::Deserialize)]
struct Answer {
    status: String,
    data: Option<Data>,
    #[serde(rename = "errorType")]
    error_type: Option<String>,
    error: Option<String>,
    #[serde(default)]
    warnings: Vec<String>,
}

#[derive(serde::Deserialize)]
#[serde(tag = "resultType", content = "result", rename_all = "lowercase")]
enum Data {
    Vector(Samples),
    Matrix(Vec<MatrixSeries>),
    Scalar(Point),
    String(serde::de::IgnoredAny),
}

/// A vector's series read straight into samples (no list of raw series in between), or the
/// first series that is not a float sample.
struct Samples(Result<Vec<InstantSample>, MetricsError>);

impl<'de> serde::Deserialize<'de> for Samples {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Series;
        impl<'de> serde::de::Visitor<'de> for Series {
            type Value = Samples;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of series")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                let mut samples = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(series) = seq.next_element::<VectorSeries>()? {
                    match series.sample() {
                        Ok(sample) => samples.push(sample),
                        Err(error) => {
                            while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                            return Ok(Samples(Err(error)));
                        }
                    }
                }
                Ok(Samples(Ok(samples)))
            }
        }
        d.deserialize_seq(Series)
    }
}

#[derive(serde::Deserialize)]
struct VectorSeries {
    #[serde(default, deserialize_with = "series_labels")]
    metric: SeriesLabels,
    value: Option<Point>,
}

impl VectorSeries {
    fn sample(self) -> Result<InstantSample, MetricsError> {
        let value = self.value.ok_or_else(|| {
            MetricsError::BadResponse(
                "a series without a float sample (a native histogram?)".into(),
            )
        })?;
        Ok(InstantSample {
            labels: self.metric,
            value: value.value()?,
        })
    }
}

/// A series' `metric` object as [`SeriesLabels`]: names and values copied straight from the
/// body into one string.
fn series_labels<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SeriesLabels, D::Error> {
    struct Labels;
    impl<'de> serde::de::Visitor<'de> for Labels {
        type Value = SeriesLabels;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an object of label names and values")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut text = String::new();
            let mut ends: smallvec::SmallVec<[(usize, usize); 4]> = smallvec::SmallVec::new();
            while map.next_key_seed(AppendTo(&mut text))?.is_some() {
                let name_end = text.len();
                map.next_value_seed(AppendTo(&mut text))?;
                ends.push((name_end, text.len()));
            }
            Ok(SeriesLabels::from_text(text, &ends))
        }
    }
    d.deserialize_map(Labels)
}

/// Appends a JSON string to a buffer without a `String` of its own.
struct AppendTo<'s>(&'s mut String);

impl<'de> serde::de::DeserializeSeed<'de> for AppendTo<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> serde::de::Visitor<'de> for AppendTo<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<(), E> {
        self.0.push_str(text);
        Ok(())
    }
}

#[derive(serde::Deserialize)]
struct MatrixSeries {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    #[serde(default)]
    values: Vec<Point>,
}

/// `[unix time, "value"]`; the value is text so that `NaN` and `+Inf` survive JSON.
#[derive(serde::Deserialize)]
struct Point(f64, SampleValue);

impl Point {
    fn value(&self) -> Result<f64, MetricsError> {
        self.1.0.as_ref().copied().map_err(|text| {
            MetricsError::BadResponse(format!("sample value `{text}` is not a number"))
        })
    }
}

/// A sample's value read from its text as it is parsed, or the text that is not a number.
struct SampleValue(Result<f64, Box<str>>);

impl<'de> serde::Deserialize<'de> for SampleValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Text;
        impl<'de> serde::de::Visitor<'de> for Text {
            type Value = SampleValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a sample value as a string")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<SampleValue, E> {
                Ok(SampleValue(text.parse::<f64>().map_err(|_| text.into())))
            }
        }
        d.deserialize_str(Text)
    }
}

/// Reads an answer of `/api/v1/query` (HTTP status and body) as samples: what `instant` does
/// with what it receives, public so that it can be fuzzed on its own.
pub fn instant_answer(
    status: u16,
    body: &[u8],
    timeout_seconds: u64,
) -> Result<Vec<InstantSample>, MetricsError> {
    // The shape Prometheus writes, read directly; anything else by the general reader below.
    if (200..300).contains(&status)
        && let Some(samples) = super::compact_vector::read(body)
    {
        return Ok(samples);
    }
    match parse_answer(status, body, timeout_seconds)? {
        Data::Vector(Samples(samples)) => samples,
        Data::Scalar(point) => Ok(vec![InstantSample {
            labels: SeriesLabels::default(),
            value: point.value()?,
        }]),
        Data::Matrix(_) | Data::String(_) => Err(MetricsError::BadResponse(
            "an instant query returned neither a vector nor a scalar".into(),
        )),
    }
}

/// Reads one answer of the query API: an error status or envelope is an error, warnings make
/// it partial, and only a clean `success` gives data.
fn parse_answer(status: u16, body: &[u8], timeout_seconds: u64) -> Result<Data, MetricsError> {
    let answer: Answer = match serde_json::from_slice(body) {
        Ok(answer) => answer,
        Err(error) => {
            let snippet =
                crate::redact::credentials(&String::from_utf8_lossy(&body[..body.len().min(200)]));
            return Err(if (200..300).contains(&status) {
                MetricsError::BadResponse(format!("not a query API answer ({error}): {snippet}"))
            } else {
                MetricsError::Rejected(format!("HTTP {status}: {snippet}"))
            });
        }
    };
    if answer.status != "success" || !(200..300).contains(&status) {
        let kind = answer.error_type.unwrap_or_default();
        let message = answer.error.unwrap_or_else(|| "no error message".into());
        return Err(match kind.as_str() {
            "timeout" | "canceled" => MetricsError::Timeout {
                seconds: timeout_seconds,
            },
            _ => MetricsError::Rejected(format!("{kind}: {message} (HTTP {status})")),
        });
    }
    // "PromQL info: ..." annotations (older Prometheus sends them as warnings) say nothing
    // about missing data; every other warning may.
    let warnings: Vec<&str> = answer
        .warnings
        .iter()
        .map(String::as_str)
        .filter(|w| !w.starts_with("PromQL info:"))
        .collect();
    if !warnings.is_empty() {
        return Err(MetricsError::PartialResponse(warnings.join("; ")));
    }
    answer
        .data
        .ok_or_else(|| MetricsError::BadResponse("a successful answer without data".into()))
}

impl MetricsSource for Prometheus {
    async fn instant(
        &self,
        expr: &str,
        at: UnixSeconds,
    ) -> Result<Vec<InstantSample>, MetricsError> {
        let form = [
            ("query", expr.to_string()),
            ("time", at.to_string()),
            ("timeout", format!("{}ms", self.timeout.as_millis())),
        ];
        let (status, body) = self.post("query", &form).await?;
        let timeout = self.timeout.as_secs();
        if body.as_ref().len() < PARSE_APART_BYTES {
            return instant_answer(status, body.as_ref(), timeout);
        }
        // A large answer (a rules-mode window over thousands of SLOs) is read on a thread of
        // its own: the answers of one cycle are read side by side, and the cycle's task is
        // free to take the next answer off the wire meanwhile.
        tokio::task::spawn_blocking(move || instant_answer(status, body.as_ref(), timeout))
            .await
            .map_err(|error| MetricsError::BadResponse(format!("reading the answer: {error}")))?
    }

    async fn range(
        &self,
        expr: &str,
        start: UnixSeconds,
        end: UnixSeconds,
        step: u64,
    ) -> Result<Vec<RangeSeries>, MetricsError> {
        let form = [
            ("query", expr.to_string()),
            ("start", start.to_string()),
            ("end", end.to_string()),
            ("step", step.to_string()),
            ("timeout", format!("{}ms", self.timeout.as_millis())),
        ];
        let (status, body) = self.post("query_range", &form).await?;
        match parse_answer(status, body.as_ref(), self.timeout.as_secs())? {
            Data::Matrix(series) => series
                .into_iter()
                .map(|s| {
                    let points = s
                        .values
                        .iter()
                        .map(|p| Ok((p.0.round() as i64, p.value()?)))
                        .collect::<Result<_, MetricsError>>()?;
                    Ok(RangeSeries {
                        labels: s.metric,
                        points,
                    })
                })
                .collect(),
            _ => Err(MetricsError::BadResponse(
                "a range query did not return a matrix".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::Strategy as _;

    #[test]
    fn secrets_do_not_print() {
        let mut config = PrometheusConfig::new("http://127.0.0.1:1");
        config.bearer_token = Some(SecretString::from("s3cret-token"));
        config.basic_auth = Some(("me".into(), SecretString::from("hunter2")));
        config
            .headers
            .push(("X-Scope-OrgID".into(), "tenant-secret".into()));
        let printed = format!("{config:?}");
        for secret in ["s3cret-token", "hunter2", "tenant-secret"] {
            assert!(!printed.contains(secret), "{printed}");
        }
    }

    fn vector(body: &str) -> Result<usize, MetricsError> {
        match parse_answer(200, body.as_bytes(), 10)? {
            Data::Vector(Samples(series)) => Ok(series?.len()),
            _ => Err(MetricsError::BadResponse("not a vector".into())),
        }
    }

    proptest::proptest! {
        #[test]
        fn any_answer_is_read_or_refused_without_panicking(
            status in 100u16..600,
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512),
        ) {
            let _ = instant_answer(status, &body, 10);
        }

        /// The compact reader reads what the general one reads, and reads every escape-free
        /// answer Prometheus could write (so this compares the two readers, not one with itself).
        #[test]
        fn the_compact_reader_reads_exactly_what_the_general_reader_reads(
            series in proptest::collection::vec(
                (
                    proptest::collection::vec(("[a-z_]{1,4}", "[a-z/\"\\\\é\u{1}.-]{0,6}"), 0..4),
                    proptest::prop_oneof![
                        proptest::prelude::Just("1733580000.123".to_string()),
                        proptest::prelude::any::<f64>().prop_filter("finite", |t| t.is_finite()).prop_map(|t| t.to_string()),
                        "-?[0-9]{1,3}(\\.[0-9]{0,2})?([eE][+-]?[0-9]{1,3})?",
                    ],
                    proptest::prop_oneof![
                        proptest::prelude::any::<f64>().prop_map(|v| format!("\"{v}\"")),
                        "\"(NaN|\\+Inf|-Inf|0\\.0002|1e-3|lots|)\"",
                    ],
                ),
                0..6,
            ),
            warning in proptest::prelude::any::<bool>(),
            damage in (proptest::prelude::any::<proptest::sample::Index>(), proptest::option::of(0x20u8..0x7f)),
        ) {
            let result: Vec<String> = series
                .iter()
                .map(|(labels, time, value)| {
                    let labels: Vec<String> = labels
                        .iter()
                        .map(|(n, v)| format!("{}:{}", serde_json::json!(n), serde_json::json!(v)))
                        .collect();
                    format!(r#"{{"metric":{{{}}},"value":[{time},{value}]}}"#, labels.join(","))
                })
                .collect();
            let warnings = if warning { r#","warnings":["store down"]"# } else { "" };
            let body = format!(
                r#"{{"status":"success","data":{{"resultType":"vector","result":[{}]}}{warnings}}}"#,
                result.join(",")
            );
            let general = match parse_answer(200, body.as_bytes(), 10) {
                Ok(Data::Vector(Samples(samples))) => samples,
                Ok(_) => Err(MetricsError::BadResponse("not a vector".into())),
                Err(error) => Err(error),
            };
            let bits = |samples: &[InstantSample]| -> Vec<(SeriesLabels, u64)> {
                samples.iter().map(|s| (s.labels.clone(), s.value.to_bits())).collect()
            };
            match super::super::compact_vector::read(body.as_bytes()) {
                Some(compact) => {
                    let general = general.as_ref().expect("the general reader reads it too");
                    proptest::prop_assert_eq!(bits(&compact), bits(general));
                }
                None => {
                    // Given up on only for what the compact shape does not cover.
                    let plain = !body.contains('\\') && !warning && general.is_ok();
                    let times_are_json = series.iter().all(|(_, t, _)| serde_json::from_str::<f64>(t).is_ok());
                    proptest::prop_assert!(!(plain && times_are_json), "not read: {}", body);
                }
            }
            // What callers get is the general reader's answer either way.
            proptest::prop_assert_eq!(
                instant_answer(200, body.as_bytes(), 10).map(|s| bits(&s)),
                general.map(|s| bits(&s))
            );
            // A body cut short, or with one byte changed, is read as the general reader
            // reads it, or left to it.
            let (at, byte) = damage;
            let mut damaged = body.into_bytes();
            let at = at.index(damaged.len());
            match byte {
                Some(byte) => damaged[at] = byte,
                None => damaged.truncate(at),
            }
            if let Some(compact) = super::super::compact_vector::read(&damaged) {
                let general = match parse_answer(200, &damaged, 10) {
                    Ok(Data::Vector(Samples(samples))) => samples,
                    _ => Err(MetricsError::BadResponse("not a vector".into())),
                };
                proptest::prop_assert_eq!(Ok(bits(&compact)), general.map(|s| bits(&s)));
            }
        }

        #[test]
        fn sample_values_are_numbers_or_errors(value in ".{0,12}") {
            let body = format!(
                r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{}},"value":[1,{}]}}]}}}}"#,
                serde_json::Value::String(value.clone())
            );
            match instant_answer(200, body.as_bytes(), 10) {
                Ok(samples) => proptest::prop_assert_eq!(samples.len(), 1),
                Err(error) => proptest::prop_assert!(matches!(error, MetricsError::BadResponse(_))),
            }
        }
    }

    #[test]
    fn a_series_labels_are_read_by_name_and_a_repeated_name_keeps_its_last_value() {
        let body = br#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"slo":"checkout","__name__":"x","route":"/a","route":"/pay"},"value":[1,"0.5"]},
            {"metric":{},"value":[1,"1"]}]}}"#;
        let samples = instant_answer(200, body, 10).unwrap();
        let labels = &samples[0].labels;
        assert_eq!(labels.get("slo"), Some("checkout"));
        assert_eq!(labels.get("route"), Some("/pay"));
        assert_eq!(labels.get("__name__"), Some("x"));
        assert_eq!(labels.get("service"), None);
        let names: Vec<&str> = labels.iter().map(|(k, _)| k).collect();
        assert_eq!(names, ["__name__", "route", "slo"]);
        assert!(samples[1].labels.is_empty());
    }

    #[test]
    fn escaped_label_values_and_sample_values_are_read_as_prometheus_wrote_them() {
        let body = br#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"slo":"caf\u00e9","route":"/a\"b\\c"},"value":[1,"+Inf"]},
            {"metric":{"slo":"x"},"value":[1,"NaN"]},
            {"metric":{"slo":"y"},"value":[1,"1e-3"]}]}}"#;
        let samples = instant_answer(200, body, 10).unwrap();
        assert_eq!(samples[0].labels.get("slo"), Some("café"));
        assert_eq!(samples[0].labels.get("route"), Some(r#"/a"b\c"#));
        assert_eq!(samples[0].value, f64::INFINITY);
        assert!(samples[1].value.is_nan());
        assert_eq!(samples[2].value, 0.001);
        // A value that is not a number names itself, wherever it is in the answer.
        let bad = br#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"slo":"a"},"value":[1,"0.5"]},
            {"metric":{"slo":"b"},"value":[1,"lots"]},
            {"metric":{"slo":"c"},"value":[1,"0.5"]}]}}"#;
        assert_eq!(
            instant_answer(200, bad, 10),
            Err(MetricsError::BadResponse(
                "sample value `lots` is not a number".into()
            ))
        );
        // A series without a float sample (a native histogram) is refused, not skipped.
        let histogram = br#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"slo":"a"},"histogram":[1,{"count":"2"}]}]}}"#;
        assert!(matches!(
            instant_answer(200, histogram, 10),
            Err(MetricsError::BadResponse(m)) if m.contains("native histogram")
        ));
    }

    #[test]
    fn answers_are_read_or_refused_never_guessed() {
        let ok = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"0.5"]}]}}"#;
        assert_eq!(vector(ok), Ok(1));
        // Thanos/Mimir partial responses: the numbers may lack series, so they are not numbers.
        let partial = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"0.5"]}]},"warnings":["store 10.0.0.3 unavailable"]}"#;
        assert_eq!(
            vector(partial),
            Err(MetricsError::PartialResponse(
                "store 10.0.0.3 unavailable".into()
            ))
        );
        let timeout = r#"{"status":"error","errorType":"timeout","error":"query timed out"}"#;
        assert_eq!(
            parse_answer(503, timeout.as_bytes(), 7).err(),
            Some(MetricsError::Timeout { seconds: 7 })
        );
        let bad = r#"{"status":"error","errorType":"bad_data","error":"parse error"}"#;
        assert!(matches!(
            parse_answer(400, bad.as_bytes(), 7),
            Err(MetricsError::Rejected(m)) if m.contains("parse error")
        ));
        assert!(matches!(
            parse_answer(502, b"<html>bad gateway</html>", 7),
            Err(MetricsError::Rejected(m)) if m.contains("502")
        ));
        assert!(matches!(
            parse_answer(200, b"garbage", 7),
            Err(MetricsError::BadResponse(_))
        ));
        // An error body behind a 200 is still an error.
        assert!(parse_answer(200, bad.as_bytes(), 7).is_err());
    }
}
