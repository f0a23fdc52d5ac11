use super::*;

#[test]
fn every_route_is_declared_once_with_matching_parameters() {
    let mut seen = std::collections::BTreeSet::new();
    for r in ROUTES {
        assert!(
            seen.insert((r.method, r.path)),
            "{} {} twice",
            r.method,
            r.path
        );
        assert!(r.path.starts_with("/admin/v1/"));
        if let Target::Proxy(_, to) = r.target {
            let params = |p: &str| -> Vec<String> {
                p.split('/')
                    .filter(|s| s.starts_with('{'))
                    .map(str::to_string)
                    .collect()
            };
            assert_eq!(params(r.path), params(to), "{} {}", r.method, r.path);
        }
    }
}
