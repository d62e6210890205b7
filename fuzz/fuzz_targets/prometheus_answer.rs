//! Answers of the Prometheus query API: samples or an error, never a panic. The first two
//! bytes pick the HTTP status.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let status = 100 + u16::from_be_bytes([data[0], data[1]]) % 500;
    let _ = burnguard::adapters::prometheus::instant_answer(status, &data[2..], 10);
});
