//! Policy files: any text is policies or located problems, never a panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = burnguard::policies::parse_policies("fuzz.yaml", text);
    }
});
