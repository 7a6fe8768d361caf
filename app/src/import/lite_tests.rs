//! Tests of the Lite save import and export, on saves written the way Lite writes them.

use super::*;
use crate::import::import_file;

/// A story-mode save as Lite's "Download JSON" writes it (with settings).
fn story_save() -> Value {
    json!({
        "gamestarted": true,
        "prompt": "The ship drifted.",
        "memory": "Captain Vey commands the Lark.",
        "authorsnote": "Tense, short sentences.",
        "anotetemplate": "[Style: <|>]",
        "actions": [" Alarms rang.[<|h|abc123|h|>]", " Vey ran to the bridge."],
        "actions_metadata": {"0": {"Selected Text": "", "Alternative Text": []}},
        "worldinfo": [
            {"key": "Lark,ship", "keysecondary": "", "keyanti": "", "content": "The Lark is an old freighter.", "comment": "",
             "folder": null, "selective": false, "constant": false, "probability": 100, "wigroup": "", "widisabled": false},
            {"key": "bridge", "keysecondary": "alarm,alarms", "keyanti": "", "content": "The bridge has red lights.", "comment": "",
             "folder": null, "selective": true, "constant": false, "probability": 100, "wigroup": "", "widisabled": false}
        ],
        "wifolders_d": {}, "wifolders_l": [],
        "anotestr": 320, "wisearchdepth": 0, "wiinsertlocation": 0,
        "personal_notes": "remember the cat", "altbranches": [],
        "savedsettings": {"opmode": 1, "temperature": 0.9, "top_p": 0.8, "top_k": 40, "rep_pen": 1.1, "rep_pen_range": 512,
                          "max_length": 200, "max_context_length": 4096, "min_p": 0.05, "extrastopseq": "END||$||\n\n",
                          "my_api_key": "0000000000", "chatname": "User", "chatopponent": "KoboldAI"}
    })
}

#[test]
fn a_lite_story_save_keeps_text_memory_note_world_info_and_settings() {
    let bytes = serde_json::to_vec(&story_save()).expect("json");
    let i = import_file("lark.json", &bytes).expect("imports");
    let s = &i.stories[0];
    assert_eq!(s.title, "lark");
    assert_eq!(s.mode, Mode::Story);
    assert_eq!(
        s.turns.iter().map(|t| t.text.as_str()).collect::<Vec<_>>(),
        vec!["The ship drifted.", " Alarms rang.", " Vey ran to the bridge."]
    );
    assert_eq!(s.memory, "Captain Vey commands the Lark.");
    assert_eq!(
        (s.authors_note.as_str(), s.authors_note_template.as_str(), s.authors_note_depth),
        ("Tense, short sentences.", "[Style: <|>]", 2)
    );
    assert_eq!(s.world_info.len(), 2);
    assert_eq!(s.world_info[1].secondary_keys, "alarm, alarms");
    let settings = i.settings.clone().expect("settings");
    assert_eq!((settings.temperature, settings.top_k, settings.max_context_length), (0.9, 40, 4096));
    assert_eq!(settings.stop_sequences, "END\n\\n\\n");
    let summary = i.summary();
    for part in [
        "the story text (3 pieces)",
        "the memory",
        "the author's note",
        "2 world info entries",
        "the settings (temperature",
    ] {
        assert!(summary.contains(part), "{part} missing from {summary}");
    }
    for part in ["personal notes", "1 inline image", "Lite's other settings"] {
        assert!(summary.contains(part), "{part} missing from {summary}");
    }
    // What the model is sent holds what the file held.
    let prompt = crate::context::assemble(s, &settings).prompt;
    assert!(
        prompt.starts_with("Captain Vey commands the Lark.\nThe Lark is an old freighter.\nThe bridge has red lights.\n"),
        "{prompt}"
    );
    assert!(
        prompt.contains("[Style: Tense, short sentences.]") && prompt.ends_with("Vey ran to the bridge."),
        "{prompt}"
    );
}

#[test]
fn chat_and_instruct_saves_become_turns() {
    let chat = json!({"gamestarted": true, "prompt": "A quiet inn.\nAnn: Hello there.", "actions": ["\nRex: Woof!\nHe wags.", "\nAnn: Good dog."],
                      "memory": "", "authorsnote": "", "worldinfo": [],
                      "savedsettings": {"opmode": 3, "chatname": "Ann", "chatopponent": "Rex||$||Cat"}});
    let i = import_save("c.json", &chat).expect("imports");
    let s = &i.stories[0];
    assert_eq!((s.mode, s.user_name.as_str(), s.bot_name.as_str()), (Mode::Chat, "Ann", "Rex"));
    assert_eq!(
        s.turns.iter().map(|t| (t.role, t.text.as_str())).collect::<Vec<_>>(),
        vec![
            (Role::Writer, "Hello there."),
            (Role::Model, "Woof!\nHe wags."),
            (Role::Writer, "Good dog.")
        ]
    );
    assert_eq!(s.memory, "A quiet inn.");
    assert!(i.summary().contains("group-chat"));

    let instruct = json!({"gamestarted": true, "prompt": "\n{{[INPUT]}}\nName a colour.", "actions": ["\n{{[OUTPUT]}}\nBlue.", "\n{{[INPUT]}}\nAnother?\n{{[OUTPUT]}}\n"],
                          "savedsettings": {"opmode": 4, "instruct_starttag": "{{[INPUT]}}", "instruct_endtag": "{{[OUTPUT]}}", "instruct_sysprompt": "Be terse."}});
    let i = import_save("i.json", &instruct).expect("imports");
    let s = &i.stories[0];
    assert_eq!(s.mode, Mode::Instruct);
    assert_eq!(s.system_prompt, "Be terse.");
    assert_eq!(
        s.turns.iter().map(|t| (t.role, t.text.as_str())).collect::<Vec<_>>(),
        vec![(Role::Writer, "Name a colour."), (Role::Model, "Blue."), (Role::Writer, "Another?")]
    );
}

#[test]
fn united_saves_read_their_actions_and_world_info() {
    let united = json!({"file_version": 2, "story_name": "Keep", "prompt": "Start.", "memory": "M", "authornote": "N",
                        "actions": {"action_count": 2, "actions": {"1": {"Selected Text": " Two."}, "0": {"Selected Text": " One."}}},
                        "worldinfo_v2": {"entries": {"0": {"key": ["keep"], "keysecondary": [], "content": "The keep.", "constant": false, "selective": false}}}});
    assert!(is_save(&united));
    let i = import_save("u.json", &united).expect("imports");
    let s = &i.stories[0];
    assert_eq!(s.title, "Keep");
    assert_eq!(s.turns.iter().map(|t| t.text.as_str()).collect::<String>(), "Start. One. Two.");
    assert_eq!((s.memory.as_str(), s.authors_note.as_str(), s.world_info.len()), ("M", "N", 1));
}

#[test]
fn united_saves_keep_their_mode() {
    let chat = json!({"file_version": 2, "storymode": 2, "chatname": "Ann", "prompt": "",
                      "actions": {"action_count": 1, "actions": {"0": {"Selected Text": "Ann: Hi.\nKoboldAI: Hello."}}}});
    let i = import_save("c.kaistory", &chat).expect("imports");
    let s = &i.stories[0];
    assert_eq!((s.mode, s.user_name.as_str()), (Mode::Chat, "Ann"));
    assert_eq!(s.turns.len(), 2);
    let adventure = json!({"file_version": 2, "storymode": 1, "prompt": "A cave.", "actions": {"actions": {}}});
    let i = import_save("a.kaistory", &adventure).expect("imports");
    assert!(i.summary().contains("adventure mode"), "{}", i.summary());
}

#[test]
fn the_lite_export_reads_back_the_same_story() {
    let mut story = Story {
        title: "Rt".into(),
        mode: Mode::Chat,
        user_name: "Ann".into(),
        bot_name: "Rex".into(),
        memory: "Mem".into(),
        authors_note: "Note".into(),
        authors_note_depth: 1,
        ..Story::default()
    };
    story.turns = vec![Turn::writer("Hi."), Turn::model("Woof.", None)];
    story.world_info.push(crate::story::WorldEntry {
        keys: "dog".into(),
        secondary_keys: "bark".into(),
        content: "Dogs bark.".into(),
        constant: false,
    });
    let settings = GenSettings {
        temperature: 0.5,
        top_a: 0.2,
        typical: 0.9,
        tfs: 0.95,
        rep_pen_slope: 0.3,
        dynatemp_range: 0.5,
        dynatemp_exponent: 1.5,
        smoothing_factor: 0.25,
        sampler_order: "5,6,0,1,2,3,4".into(),
        seed: 77,
        ..GenSettings::default()
    };
    let json = export_save(&story, &settings);
    let value: Value = serde_json::from_str(&json).expect("json");
    assert!(is_save(&value));
    let i = import_save("Rt.json", &value).expect("imports");
    let back = &i.stories[0];
    assert_eq!(back.turns, story.turns);
    assert_eq!(
        (back.memory.as_str(), back.authors_note.as_str(), back.authors_note_depth),
        ("Mem", "Note", 1)
    );
    assert_eq!(back.world_info, story.world_info);
    // Every sampler Lite keeps comes back.
    assert_eq!(i.settings.expect("settings"), settings);
}

#[test]
fn image_markers_are_removed_and_counted() {
    assert_eq!(strip_images("a[<|h|x|h|>]b[<|p|y|p|>]c[<|q"), ("abc[<|q".to_string(), 2));
}
