#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| devmux_fuzz::bodies::text_inputs(data));
