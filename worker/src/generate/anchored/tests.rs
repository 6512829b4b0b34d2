use super::*;

#[test]
fn anchors_are_every_original_up_to_the_cap_then_a_seeded_sorted_choice() {
    assert_eq!(anchor_choice(0, 3, 4, 10), vec![0, 1, 2, 3]);
    assert_eq!(anchor_choice(0, 3, 10, 10), (0..10).collect::<Vec<_>>());
    let chosen = anchor_choice(7, 3, 1000, 50);
    assert_eq!(chosen.len(), 50);
    assert!(chosen.windows(2).all(|w| w[0] < w[1]), "sorted, distinct");
    assert!(chosen.iter().all(|&i| i < 1000));
    assert_eq!(chosen, anchor_choice(7, 3, 1000, 50), "reproducible");
    assert_ne!(chosen, anchor_choice(8, 3, 1000, 50), "the seed matters");
    assert_ne!(chosen, anchor_choice(7, 4, 1000, 50), "so does the class");
    // Spread over the class, not its first images.
    assert!(*chosen.last().unwrap() > 500, "{chosen:?}");
}

#[test]
fn nearest_anchors_by_code_distance_ties_to_the_lower_index() {
    // One-dimensional codes at 0, 10, 1, 11, 5.
    let codes = [0.0, 10.0, 1.0, 11.0, 5.0];
    let near = nearest_anchors(&codes, 1, 2);
    assert_eq!(near[0], vec![2, 4]);
    assert_eq!(near[1], vec![3, 4]);
    // 5 is 4 from 1 (anchor 2), then 5 from both 0 and 10: the tie goes to anchor 0.
    assert_eq!(near[4], vec![2, 0]);
    assert_eq!(nearest_anchors(&[3.0, 3.0], 1, 5), vec![vec![1], vec![0]]);
    assert_eq!(
        nearest_anchors(&[1.0, 2.0], 2, 5),
        vec![Vec::<usize>::new()]
    );
}

#[test]
fn anchored_noise_lies_between_an_anchor_and_one_of_its_neighbours() {
    let latent = 3;
    let codes = [0.0, 0.0, 0.0, 1.0, 2.0, 3.0, -4.0, 4.0, 8.0];
    let neighbours = nearest_anchors(&codes, latent, 1);
    let mut seen_fractions = Vec::new();
    for index in 0..30u64 {
        let mut noise = [0f32; 3];
        anchored_noise(5, 2, index, &codes, &neighbours, &mut noise);
        let anchor = (index % 3) as usize;
        let toward = neighbours[anchor][0];
        let a = &codes[anchor * latent..][..latent];
        let b = &codes[toward * latent..][..latent];
        // noise = a + t (b - a) with the same t in every component.
        let fraction = (noise[2] - a[2]) / (b[2] - a[2]);
        assert!((0.0..1.0).contains(&fraction), "{fraction}");
        for d in 0..latent {
            assert!((noise[d] - (a[d] + fraction * (b[d] - a[d]))).abs() < 1e-5);
        }
        seen_fractions.push(fraction);
        let mut again = [0f32; 3];
        anchored_noise(5, 2, index, &codes, &neighbours, &mut again);
        assert_eq!(noise, again, "image {index} is reproducible");
    }
    let spread = seen_fractions.iter().cloned().fold(f32::MIN, f32::max)
        - seen_fractions.iter().cloned().fold(f32::MAX, f32::min);
    assert!(
        spread > 0.5,
        "fractions drawn over (0, 1): {seen_fractions:?}"
    );
}

#[test]
fn a_lone_anchor_is_reproduced_exactly() {
    let codes = [0.5, -0.25];
    let neighbours = nearest_anchors(&codes, 2, NEIGHBOURS);
    let mut noise = [9f32; 2];
    anchored_noise(0, 0, 17, &codes, &neighbours, &mut noise);
    assert_eq!(noise, [0.5, -0.25]);
}

#[test]
fn codes_round_trip_through_bytes() {
    let codes = [1.5f32, -0.0, f32::MIN_POSITIVE, 3.25];
    let bytes = encode_codes(&codes);
    assert_eq!(bytes.len(), 16);
    let back: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    assert_eq!(back, codes);
}

#[test]
fn a_class_codes_are_read_across_its_invert_tasks_files_in_order_and_a_short_file_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = StoreLocation::local(dir.path(), true).expect("store");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let latent = 2;
    // 70 anchors: the first invert task wrote 64, the second 6.
    let codes: Vec<f32> = (0..70 * latent).map(|v| v as f32).collect();
    let (first, second) = codes.split_at(64 * latent);
    for (start, part) in [(0, first), (64, second)] {
        runtime
            .block_on(root.put(&codes_name("06-shirt", start), encode_codes(part)))
            .expect("put");
    }
    let read = read_class_codes(&root, "06-shirt", 70, latent, runtime.handle()).expect("read");
    assert_eq!(read, codes);

    runtime
        .block_on(root.put(&codes_name("06-shirt", 64), encode_codes(&second[..4])))
        .expect("put");
    let error = read_class_codes(&root, "06-shirt", 70, latent, runtime.handle())
        .expect_err("a short file");
    let message = error.to_string();
    assert!(message.contains("codes-000064.f32"), "{message}");
    assert!(message.contains("6 anchors"), "{message}");
    let missing = read_class_codes(&root, "07-sneaker", 3, latent, runtime.handle())
        .expect_err("no codes were written for that class");
    assert!(
        missing.to_string().contains("07-sneaker/codes-000000.f32"),
        "{missing}"
    );
}
