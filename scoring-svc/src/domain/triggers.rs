//! Threshold triggers: which crossings a change made. A trigger watching `score ≥ threshold`
//! remembers the side the profile was last seen on; between that and the new score the profile
//! may have passed the threshold twice (decay took it below, an event brought it back), so the
//! sides are followed through the stored one, the exact score just before the change and the
//! score after it. Each crossing in the trigger's direction fires it once.

use rules::Expanded;

use super::defs::{ActionSpec, Direction};

/// What a trigger watches, compiled.
#[derive(Debug, Clone, PartialEq)]
pub enum On {
    /// `model` is the index of the model in the tenant's definitions.
    Score {
        model: usize,
        threshold: f64,
        direction: Direction,
    },
    StageEntered {
        stage: String,
    },
}

/// A trigger, compiled.
#[derive(Debug, Clone)]
pub struct Trigger {
    pub id: String,
    pub name: String,
    pub on: On,
    pub actions: Vec<ActionSpec>,
    pub condition: Option<Expanded>,
}

/// What a score trigger remembers of one profile: the side last recorded and how many crossings
/// it counted (the key of its next firing), plus what the work in progress saw of it.
#[derive(Debug, Clone, PartialEq)]
pub struct TrigState {
    /// The side last recorded (`None`: never recorded).
    pub above: Option<bool>,
    pub seq: i64,
    /// The value last evaluated in this work (crossings are counted from it).
    pub seen: Option<f64>,
    /// It must be written back.
    pub changed: bool,
}

impl TrigState {
    /// A state as recorded.
    pub fn recorded(above: bool, seq: i64) -> Self {
        TrigState {
            above: Some(above),
            seq,
            seen: None,
            changed: false,
        }
    }

    /// A profile this trigger never looked at.
    pub fn unseen() -> Self {
        TrigState {
            above: None,
            seq: 0,
            seen: None,
            changed: false,
        }
    }
}

/// Crossings of one threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Crossed {
    pub up: bool,
    pub down: bool,
    /// The side after the change: at or above the threshold.
    pub above: bool,
}

/// The crossings from `stored` (the side last recorded; `None`: never recorded, i.e. the side of
/// a score of 0) through `old` (exact just before the change) to `new`.
pub fn crossings(threshold: f64, stored: Option<bool>, old: f64, new: f64) -> Crossed {
    let side = |v: f64| v >= threshold;
    let sides = [stored.unwrap_or(side(0.0)), side(old), side(new)];
    let mut c = Crossed {
        above: sides[2],
        ..Default::default()
    };
    for w in sides.windows(2) {
        match (w[0], w[1]) {
            (false, true) => c.up = true,
            (true, false) => c.down = true,
            _ => {}
        }
    }
    c
}

impl Crossed {
    /// Did it cross in `d`?
    pub fn fires(&self, d: Direction) -> bool {
        match d {
            Direction::Up => self.up,
            Direction::Down => self.down,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sides_are_followed_through_decay_and_the_change() {
        let c = crossings(50.0, None, 0.0, 60.0);
        assert!(c.up && !c.down && c.above);
        let c = crossings(50.0, Some(true), 55.0, 70.0);
        assert_eq!(
            c,
            Crossed {
                up: false,
                down: false,
                above: true
            }
        );
        // Decay took it below 50 unseen; an event brings it back.
        let c = crossings(50.0, Some(true), 40.0, 65.0);
        assert!(c.up && c.down && c.above);
        let c = crossings(50.0, Some(true), 45.0, 45.0);
        assert!(c.down && !c.up && !c.above);
        // A threshold at or below zero: a new profile starts above it.
        let c = crossings(0.0, None, 0.0, -3.0);
        assert!(c.down && !c.up);
    }
}
