//! A ConfigMap: each key and its data.

use super::*;

pub fn describe_configmap(cm: &Value, events: &[Value], now: DateTime<Utc>) -> String {
    let mut w = Page::default();
    w.object_header(cm);
    w.write(0, "\nData\n====\n");
    for (key, value) in string_map(cm, "/data") {
        w.write(0, &format!("{key}:\n----\n"));
        w.write(0, &format!("{value}\n"));
        w.write(0, "\n");
    }
    w.write(0, "\nBinaryData\n====\n");
    for (key, value) in string_map(cm, "/binaryData") {
        // Base64 text: 4 characters carry 3 bytes.
        let padding = value.chars().rev().take_while(|c| *c == '=').count();
        let bytes = value.len() / 4 * 3 - padding;
        w.write(0, &format!("{key}: {bytes} bytes\n"));
    }
    w.write(0, "\n");
    w.events(events, now);
    w.finish()
}
