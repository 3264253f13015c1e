use super::*;
use crate::scratch::Scratch;

fn kafka(scratch: &Scratch, nodes: u16) -> Kafka {
    let nodes = (1..=nodes)
        .map(|n| KafkaNode {
            name: format!("kafka-{n}"),
            dir: scratch.path().join(format!("kafka-{n}")),
            id: n.into(),
            port: 100 + n,
            controller_port: 200 + n,
            heap: ("1m", "2m"),
            timeout: Duration::from_secs(1),
        })
        .collect();
    Kafka {
        nodes,
        tools: Tools {
            log4j: scratch.path().join("tools/log4j2.properties"),
            log: scratch.path().join("tools/tools.log"),
        },
        replication: 1,
        cluster_id_file: scratch.path().join("cluster-id"),
    }
}

#[test]
fn one_node_is_its_own_quorum() {
    let scratch = Scratch::new("kafka-one");
    let kafka = kafka(&scratch, 1);
    kafka.write_config(&kafka.nodes[0]).unwrap();
    let props = fs::read_to_string(kafka.nodes[0].props()).unwrap();
    assert!(
        props.contains("controller.quorum.bootstrap.servers=127.0.0.1:201\n"),
        "{props}"
    );
    assert!(props.contains("listeners=PLAINTEXT://127.0.0.1:101,CONTROLLER://127.0.0.1:201\n"));
    assert!(!props.contains("min.insync.replicas"));
    assert_eq!(kafka.nodes[0].running_port().as_deref(), Some("101"));
}

#[test]
fn several_nodes_vote_in_a_static_quorum() {
    let scratch = Scratch::new("kafka-three");
    let mut kafka = kafka(&scratch, 3);
    kafka.replication = 3;
    kafka.write_config(&kafka.nodes[1]).unwrap();
    let props = fs::read_to_string(kafka.nodes[1].props()).unwrap();
    assert!(props.contains("node.id=2\n"));
    assert!(
        props
            .contains("controller.quorum.voters=1@127.0.0.1:201,2@127.0.0.1:202,3@127.0.0.1:203\n"),
        "{props}"
    );
    assert!(props.contains("min.insync.replicas=2\n"));
    assert!(props.contains("default.replication.factor=3\n"));
    assert_eq!(kafka.brokers(), "127.0.0.1:101,127.0.0.1:102,127.0.0.1:103");
}

#[test]
fn one_node_cannot_move_its_controller_once_formatted() {
    let scratch = Scratch::new("kafka-moved");
    let kafka = kafka(&scratch, 1);
    fs::create_dir_all(&kafka.nodes[0].dir).unwrap();
    fs::write(
        kafka.nodes[0].formatted(),
        "cluster_id=x\ncontroller_port=999\n",
    )
    .unwrap();
    let error = kafka
        .format(crate::report::Voice("test"))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("formatted for controller port 999, not 201"),
        "{error}"
    );
}
