fn main() {
    eprintln!("streamgate-bench: scenarios land with the benchmark issue");
}
