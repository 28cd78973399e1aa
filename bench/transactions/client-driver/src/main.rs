//! rivulet-client's idempotent and transactional producer, driven by
//! tests/interop/test_transactions_rust_client.py:
//!
//! ```text
//! driver idempotent <bootstrap> <topic> <partitions> <count> [key=value ...]
//!     sends "rs-<i>" to partition i % partitions, flushing every 20 records (many
//!     produce requests); prints "<value> <partition> <offset>" per record.
//! driver txn <bootstrap> <transactional.id> <topic> <partitions> <spec> [key=value ...]
//!     spec: comma-separated transactions, "c<N>" committed or "a<N>" aborted, each
//!     writing N records "rs-<t>-<p>-<i>" to every partition; prints "done".
//! ```
//! An error prints "error: ..." and exits 1.

use std::process::ExitCode;

use rivulet_client::{ClientConfig, Producer, ProducerRecord};

fn config(bootstrap: &str, extra: &[String]) -> ClientConfig {
    let mut config = ClientConfig::new().set("bootstrap.servers", bootstrap);
    for pair in extra {
        if let Some((k, v)) = pair.split_once('=') {
            config = config.set(k, v);
        }
    }
    config
}

async fn idempotent(args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let [bootstrap, topic, partitions, count, extra @ ..] = args else { return Err("usage: idempotent <bootstrap> <topic> <partitions> <count>".into()) };
    let partitions: i32 = partitions.parse()?;
    let count: usize = count.parse()?;
    let producer = Producer::new(config(bootstrap, extra).set("enable.idempotence", "true").set("acks", "all")).await?;
    let mut pending = Vec::new();
    for i in 0..count {
        let value = format!("rs-{i}");
        let future = producer.send(ProducerRecord::new(topic.as_str()).partition(i as i32 % partitions).value(value.clone())).await?;
        pending.push((value, future));
        if i % 20 == 19 {
            producer.flush().await?;
        }
    }
    producer.flush().await?;
    for (value, future) in pending {
        let written = future.await?;
        println!("{value} {} {}", written.partition, written.offset);
    }
    producer.close().await?;
    Ok(())
}

async fn transactions(args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let [bootstrap, id, topic, partitions, spec, extra @ ..] = args else { return Err("usage: txn <bootstrap> <id> <topic> <partitions> <spec>".into()) };
    let partitions: i32 = partitions.parse()?;
    let producer = Producer::new(config(bootstrap, extra).set("transactional.id", id.as_str())).await?;
    producer.init_transactions().await?;
    for (t, txn) in spec.split(',').enumerate() {
        let (kind, n) = txn.split_at(1);
        let n: usize = n.parse()?;
        producer.begin_transaction()?;
        for p in 0..partitions {
            for i in 0..n {
                producer.send(ProducerRecord::new(topic.as_str()).partition(p).value(format!("rs-{t}-{p}-{i}"))).await?;
            }
        }
        match kind {
            "c" => producer.commit_transaction().await?,
            "a" => producer.abort_transaction().await?,
            other => return Err(format!("unknown transaction kind {other}").into()),
        }
    }
    producer.close().await?;
    println!("done");
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match args.first().map(String::as_str) {
        Some("idempotent") => idempotent(&args[1..]).await,
        Some("txn") => transactions(&args[1..]).await,
        _ => Err("usage: idempotent ... | txn ...".into()),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            println!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
