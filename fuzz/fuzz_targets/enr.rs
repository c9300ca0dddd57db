#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| devmux_fuzz::bodies::enr(data));
