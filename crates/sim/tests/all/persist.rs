//! A saved world comes back whole: a simulator started over it honours delta tokens and access
//! tokens issued before the save, keeps ids, and has the mail delivered before the stop.

use std::time::Duration;

use m365sync_sim::config::ProtocolConfig;
use m365sync_sim::persist::{self, Autosave};
use m365sync_sim::Origin;
use reqwest::Method;
use serde_json::json;

use crate::client::{enc, ids, small, TestSim};

const PREFER: &str = "odata.maxpagesize=50, IdType=\"ImmutableId\"";

#[tokio::test]
async fn tokens_and_mail_survive_a_save_and_a_load() {
    let dir = std::env::temp_dir().join(format!("m365sync-sim-persist-{}", std::process::id()));
    let path = dir.join("world.json");
    let _ = std::fs::remove_file(&path);
    let a = TestSim::start(small()).await;
    let token = a.token().await;
    let who = a.mailbox(1)["upn"].as_str().unwrap().to_string();
    let user = |s: &TestSim| format!("{}/users/{}", s.graph, enc(&who));
    let (_, inbox_link, _) = a
        .delta_round(
            &format!("{}/mailFolders/inbox/messages/delta", user(&a)),
            &token,
            PREFER,
        )
        .await;
    let (_, folder_link, _) = a
        .delta_round(&format!("{}/mailFolders/delta", user(&a)), &token, PREFER)
        .await;
    // Saved every few milliseconds here, and once more at the end.
    let autosave = Autosave::start(
        a.sim.clone(),
        path.clone(),
        Duration::from_millis(20),
        false,
    );
    let delivered = a
        .ctl(
            Method::POST,
            "deliver",
            json!({"from": "client@ext.example", "to": [who], "subject": "before the stop"}),
        )
        .await;
    let new_id = delivered["messages"][0]["id"].as_str().unwrap().to_string();
    let acme = a
        .ctl(
            Method::POST,
            "folders/create",
            json!({"user": who, "path": "Inbox/Clients/Acme"}),
        )
        .await;
    autosave.finish().await.unwrap();
    let truth = a.truth();
    a.running.stop();

    let (sim, loaded) =
        persist::open_or_build(&path, Origin::Generated(small()), ProtocolConfig::default())
            .unwrap();
    assert!(loaded);
    let b = TestSim::serve_sim(sim, None).await;
    assert_eq!(b.truth(), truth, "ids, folders and mail as they were");
    // The old links point at the old port; the tokens inside are what must still work, with
    // the access token issued by the simulator before the restart.
    let moved = |link: &str| link.replace(&a.base, &b.base);
    let (items, _, _) = b.delta_round(&moved(&inbox_link), &token, PREFER).await;
    assert_eq!(ids(&items), std::slice::from_ref(&new_id));
    let (folders, _, _) = b.delta_round(&moved(&folder_link), &token, PREFER).await;
    assert!(ids(&folders).contains(&acme["id"].as_str().unwrap().to_string()));
    let (status, _, msg) = b
        .get(&format!("{}/messages/{new_id}", user(&b)), &token, "")
        .await;
    assert_eq!(
        (status, msg["subject"].as_str()),
        (200, Some("before the stop"))
    );

    // A file that is not a saved world is named in the error, never silently replaced.
    std::fs::write(&path, b"not json").unwrap();
    let err = persist::open_or_build(&path, Origin::Generated(small()), ProtocolConfig::default())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains(&path.display().to_string()), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
