use super::*;

// Class 0: images 0, 2, 4, 6 labelled right, image 8 wrong; class 1: 1, 3, 5 right, 7 wrong.
const LABELS: [u16; 9] = [0, 1, 0, 1, 0, 1, 0, 1, 0];
const PREDICTED: [u16; 9] = [0, 1, 0, 1, 0, 1, 0, 0, 1];
const SURENESS: [f32; 9] = [0.9, 0.6, 0.3, 0.99, 0.5, 0.7, 0.3, 0.45, 0.2];

#[test]
fn all_keeps_every_image_labelled_as_its_class() {
    let kept = judge_kept(&LABELS, &PREDICTED, &SURENESS, JudgeKeeps::All);
    assert_eq!(kept, vec![0, 1, 2, 3, 4, 5, 6]);
    let share = kept_share(&LABELS, &kept, 3);
    assert_eq!(share.images, vec![5, 4, 0]);
    assert_eq!(share.correct, vec![0.8, 0.75, 0.0]);
}

#[test]
fn least_and_most_sure_keep_a_share_of_the_right_ones_by_the_label_probability() {
    // Class 0's right ones by sureness: 2 (0.3), 6 (0.3), 4 (0.5), 0 (0.9); half is 2 of 4, and
    // of the tie the earlier image comes first. Class 1's: 1 (0.6), 5 (0.7), 3 (0.99); half of
    // 3 rounds up to 2. The wrongly labelled 7 and 8 are never kept, however unsure.
    let least = judge_kept(&LABELS, &PREDICTED, &SURENESS, JudgeKeeps::LeastSure(0.5));
    assert_eq!(least, vec![1, 2, 5, 6]);
    let most = judge_kept(&LABELS, &PREDICTED, &SURENESS, JudgeKeeps::MostSure(0.5));
    assert_eq!(most, vec![0, 3, 4, 5]);
    // A small share still keeps one of each class; the whole share is every right one.
    let one_each = judge_kept(&LABELS, &PREDICTED, &SURENESS, JudgeKeeps::LeastSure(0.01));
    assert_eq!(one_each, vec![1, 2]);
    let whole = judge_kept(&LABELS, &PREDICTED, &SURENESS, JudgeKeeps::MostSure(1.0));
    assert_eq!(
        whole,
        judge_kept(&LABELS, &PREDICTED, &SURENESS, JudgeKeeps::All)
    );
    let share = kept_share(&LABELS, &least, 2);
    assert_eq!(share.correct, vec![0.4, 0.5]);
}
