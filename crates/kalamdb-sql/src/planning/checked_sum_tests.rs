//! Tests of the 128-bit `sum()`.
use super::*;

fn ints(v: &[Option<i64>]) -> ArrayRef {
    Arc::new(Int64Array::from(v.to_vec()))
}

#[test]
fn sums_that_do_not_fit_are_errors_whatever_the_order_and_frames_subtract() {
    let max = i64::MAX;
    let mut acc = SumAccumulator::new(Sum::Bigint);
    acc.update_batch(&[ints(&[Some(max), Some(1), None])])
        .unwrap();
    assert!(acc.evaluate().is_err(), "max + 1 does not fit");
    acc.update_batch(&[ints(&[Some(-max)])]).unwrap();
    assert_eq!(
        acc.evaluate().unwrap(),
        ScalarValue::Int64(Some(1)),
        "max + 1 - max, in any order"
    );
    let mut window = SumAccumulator::new(Sum::Bigint);
    window
        .update_batch(&[ints(&[Some(max), Some(0), Some(max)])])
        .unwrap();
    window
        .retract_batch(&[ints(&[Some(max), Some(0)])])
        .unwrap();
    assert_eq!(
        window.evaluate().unwrap(),
        ScalarValue::Int64(Some(max)),
        "a frame's intermediate sum may leave BIGINT"
    );
    window.retract_batch(&[ints(&[Some(max)])]).unwrap();
    assert_eq!(
        window.evaluate().unwrap(),
        ScalarValue::Int64(None),
        "an emptied frame sums to NULL"
    );
    let mut groups = GroupSums::new(Sum::Bigint);
    groups
        .update_batch(&[ints(&[Some(1), Some(max), None])], &[0, 1, 2], None, 3)
        .unwrap();
    let out = groups.evaluate(EmitTo::All).unwrap();
    assert_eq!(
        out.as_primitive::<Int64Type>(),
        &Int64Array::from(vec![Some(1), Some(max), None])
    );
    let mut over = GroupSums::new(Sum::Bigint);
    over.update_batch(&[ints(&[Some(max), Some(1)])], &[0, 0], None, 1)
        .unwrap();
    assert!(over.evaluate(EmitTo::All).is_err());
    // Without NULLs or a filter (the tight loop): the same answers, in any order.
    let mut fast = GroupSums::new(Sum::Bigint);
    fast.update_batch(
        &[ints(&[Some(max), Some(5), Some(1), Some(-max)])],
        &[0, 1, 0, 0],
        None,
        3,
    )
    .unwrap();
    let out = fast.evaluate(EmitTo::All).unwrap();
    assert_eq!(
        out.as_primitive::<Int64Type>(),
        &Int64Array::from(vec![Some(1), Some(5), None])
    );
    let state = fast
        .convert_to_state(&[ints(&[Some(max), None])], None)
        .unwrap();
    assert_eq!(
        state[0].as_primitive::<Decimal128Type>(),
        &Decimal128Array::from(vec![Some(max as i128), None])
            .with_precision_and_scale(38, 0)
            .unwrap()
    );
    let decimal = Sum::Decimal {
        precision: 38,
        scale: 0,
    };
    let nines: ArrayRef = Arc::new(
        Decimal128Array::from(vec![Some(6 * 10i128.pow(37)), Some(6 * 10i128.pow(37))])
            .with_precision_and_scale(38, 0)
            .unwrap(),
    );
    let mut dec = SumAccumulator::new(decimal);
    dec.update_batch(&[nines]).unwrap();
    assert!(dec.evaluate().is_err(), "1.2e38 does not fit DECIMAL(38)");
}
