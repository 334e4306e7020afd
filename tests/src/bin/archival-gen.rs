//! `archival-gen ARCHIVE TAG N [SEED]`: files N synthetic archive objects on archive tag TAG of
//! the (initialised, embedded) archive ARCHIVE, for bench/archival.sh: a million objects
//! through `ore import` would take the benchmark hours, through the library seconds.
//!
//! Every object shares one small stored tree; each has its own properties: a title of three
//! words out of 5,000, a creator out of 1,000, a date between 1900 and 2025, two tags out of
//! 50, a size. Objects are filed in batches of 100,000 (one index update and tag move each).
//! The passphrase comes from ORE_PASSPHRASE.

use ore::core::archival::{Object, Prop, Value};
use ore::core::block::Kind;
use ore::core::entry::encode;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, archive, tag, n, rest @ ..] = args.as_slice() else {
        anyhow::bail!("usage: archival-gen ARCHIVE TAG N [SEED]");
    };
    let n: u64 = n.parse()?;
    let seed: u64 = rest.first().map_or(Ok(1), |s| s.parse())?;
    let pass = std::env::var("ORE_PASSPHRASE").unwrap_or_default();
    let backend = ore::core::archive::open_existing(archive)?;
    let repo = ore::Repo::open(backend, archive, &move |_| Ok(pass.as_bytes().to_vec()))?;
    let mut rng = fastrand::Rng::with_seed(seed);
    // One small tree all objects share: a directory holding one file.
    let chunk = ore_tests::crafted::file(&repo, b"data", b"synthetic object");
    let root = ore_tests::crafted::dir(&repo, b"object", vec![chunk]);
    let word = |rng: &mut fastrand::Rng| format!("w{}", rng.u32(0..5000));
    let started = std::time::Instant::now();
    let mut made = 0;
    while made < n {
        let batch = (n - made).min(100_000);
        let mut objects = Vec::with_capacity(batch as usize);
        for i in made..made + batch {
            let mut props = vec![
                Prop {
                    key: "creator".into(),
                    value: Value::Text(format!("creator-{}", rng.u32(0..1000))),
                },
                Prop {
                    key: "date".into(),
                    value: Value::Date(rng.i64(-2_208_988_800..1_735_689_600)),
                },
                Prop {
                    key: "size".into(),
                    value: Value::Int(rng.i64(0..1 << 30)),
                },
                Prop {
                    key: "tags".into(),
                    value: Value::List(vec![
                        format!("t{}", rng.u32(0..50)),
                        format!("t{}", rng.u32(0..50)),
                    ]),
                },
                Prop {
                    key: "title".into(),
                    value: Value::Text(format!(
                        "{} {} {} {i}",
                        word(&mut rng),
                        word(&mut rng),
                        word(&mut rng)
                    )),
                },
            ];
            props.sort_by(|a, b| a.key.cmp(&b.key));
            let o = Object {
                root: root.clone(),
                props,
                imported_ns: ore::core::util::now_ns(),
                host: "gen".into(),
                user: "gen".into(),
                source: format!("/synthetic/{i}").into_bytes(),
                parent: None,
                size: 16,
                files: Default::default(),
                catalogue: None,
            };
            let (key, _) = repo.put_block(Kind::Object, &encode(&o))?;
            objects.push((key, o));
        }
        let (head, _, nodes) = ore::commands::import::file(&repo, tag, &objects)?;
        made += batch;
        eprintln!(
            "{made} objects filed ({nodes} index nodes stored, head {head}) in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
