//! One tenant's definitions compiled for evaluation: active models, enabled rules of active
//! models with their filters and conditions expanded, the stage machine (the default one when the
//! tenant has none), enabled triggers, and what all those conditions need loaded.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use rules::{Dependencies, Expanded};

use super::decay::Decay;
use super::defs::{Caps, MachineSpec, ModelSpec, RuleKind, RuleSpec, TriggerOn, TriggerSpec};
use super::stages::Machine;
use super::triggers::{On, Trigger};
use super::view::{score_thresholds, Needs};

/// A stored model.
#[derive(Debug, Clone)]
pub struct ModelDef {
    pub id: String,
    pub spec: ModelSpec,
    /// The reference instant of the leaderboard's sort key.
    pub epoch: DateTime<Utc>,
    pub active: bool,
}

/// A stored rule (deleted rules are not loaded).
#[derive(Debug, Clone)]
pub struct RuleDef {
    pub id: String,
    pub model_id: String,
    pub spec: RuleSpec,
}

/// A stored trigger (deleted triggers are not loaded).
#[derive(Debug, Clone)]
pub struct TriggerDef {
    pub id: String,
    pub spec: TriggerSpec,
}

/// A model, compiled.
#[derive(Debug, Clone)]
pub struct Model {
    pub id: String,
    pub key: String,
    pub name: String,
    pub decay: Decay,
    pub epoch: DateTime<Utc>,
}

/// An event rule, compiled.
#[derive(Debug, Clone)]
pub struct EventRule {
    pub id: String,
    pub model: usize,
    pub name: String,
    pub event: String,
    pub filter: Option<Expanded>,
    pub condition: Option<Expanded>,
    pub points: f64,
    pub caps: Caps,
}

/// A state rule, compiled.
#[derive(Debug, Clone)]
pub struct StateRule {
    pub id: String,
    pub model: usize,
    pub name: String,
    pub condition: Expanded,
    pub points: f64,
    pub deps: Dependencies,
}

/// A tenant's definitions, ready to evaluate.
#[derive(Debug, Clone)]
pub struct Compiled {
    /// The tenant's definitions version these were compiled from.
    pub version: i64,
    pub models: Vec<Model>,
    pub event_rules: Vec<EventRule>,
    pub state_rules: Vec<StateRule>,
    pub machine: Machine,
    pub triggers: Vec<Trigger>,
    pub needs: Needs,
    /// Per model: the score values conditions and triggers compare with.
    pub thresholds: Vec<Vec<f64>>,
    /// Event kinds that count as contact for some stage's SLA.
    pub sla_kinds: BTreeSet<String>,
}

impl Compiled {
    /// Compiles what is stored; definitions that no longer check (they were validated when
    /// written, so only a reference to something since removed) are left out and logged.
    pub fn compile(
        version: i64,
        models: Vec<ModelDef>,
        rules: Vec<RuleDef>,
        machine: Option<MachineSpec>,
        triggers: Vec<TriggerDef>,
    ) -> Self {
        let models: Vec<Model> = models
            .into_iter()
            .filter(|m| m.active)
            .map(|m| Model {
                id: m.id,
                key: m.spec.key,
                name: m.spec.name,
                decay: m.spec.decay,
                epoch: m.epoch,
            })
            .collect();
        let mut needs = Needs::default();
        let mut thresholds: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        let note =
            |c: &Expanded, needs: &mut Needs, thresholds: &mut BTreeMap<String, Vec<f64>>| {
                needs.add(c);
                score_thresholds(c, thresholds);
            };
        let mut event_rules = Vec::new();
        let mut state_rules = Vec::new();
        for r in rules {
            let Some(model) = models.iter().position(|m| m.id == r.model_id) else {
                continue;
            };
            if !r.spec.enabled {
                continue;
            }
            let parts = match r.spec.check("") {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(rule_id = %r.id, errors = ?e, "Stored rule does not check; left out");
                    continue;
                }
            };
            if let Some(c) = &parts.condition {
                note(c, &mut needs, &mut thresholds);
            }
            match (r.spec.kind, parts.condition) {
                (RuleKind::Event, condition) => event_rules.push(EventRule {
                    id: r.id,
                    model,
                    name: r.spec.name,
                    event: r.spec.event.unwrap_or_default(),
                    filter: parts.filter,
                    condition,
                    points: r.spec.points,
                    caps: r.spec.caps,
                }),
                (RuleKind::State, Some(condition)) => state_rules.push(StateRule {
                    id: r.id,
                    model,
                    name: r.spec.name,
                    deps: condition.dependencies(),
                    condition,
                    points: r.spec.points,
                }),
                (RuleKind::State, None) => {}
            }
        }
        let machine = match machine.map(|m| (m.check(), m)) {
            Some((Ok(parts), spec)) => Machine::new(spec, parts),
            Some((Err(e), _)) => {
                tracing::warn!(errors = ?e, "Stored stage machine does not check; using the default");
                Machine::default_machine()
            }
            None => Machine::default_machine(),
        };
        for s in &machine.stages {
            for c in s.entry.iter().chain(s.guard.iter()) {
                note(c, &mut needs, &mut thresholds);
            }
        }
        for t in &machine.transitions {
            if let Some(c) = &t.condition {
                note(c, &mut needs, &mut thresholds);
            }
        }
        let keys: Vec<String> = models.iter().map(|m| m.key.clone()).collect();
        let stage_keys: Vec<String> = machine.stages.iter().map(|s| s.key.clone()).collect();
        let mut compiled_triggers = Vec::new();
        for t in triggers.into_iter().filter(|t| t.spec.enabled) {
            let condition = match t.spec.check(&keys, &stage_keys) {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(trigger_id = %t.id, errors = ?e, "Stored trigger does not check; left out");
                    continue;
                }
            };
            if let Some(c) = &condition {
                note(c, &mut needs, &mut thresholds);
            }
            let on = match t.spec.on {
                TriggerOn::Score {
                    model,
                    threshold,
                    direction,
                } => {
                    thresholds.entry(model.clone()).or_default().push(threshold);
                    On::Score {
                        model: keys.iter().position(|k| *k == model).unwrap_or(0),
                        threshold,
                        direction,
                    }
                }
                TriggerOn::StageEntered { stage } => On::StageEntered { stage },
            };
            compiled_triggers.push(Trigger {
                id: t.id,
                name: t.spec.name,
                on,
                actions: t.spec.actions,
                condition,
            });
        }
        let thresholds = models
            .iter()
            .map(|m| {
                let mut v = thresholds.get(&m.key).cloned().unwrap_or_default();
                v.sort_by(f64::total_cmp);
                v.dedup();
                v
            })
            .collect();
        let sla_kinds = machine
            .stages
            .iter()
            .filter_map(|s| s.sla.as_ref())
            .flat_map(|s| s.met_by.iter().cloned())
            .collect();
        Compiled {
            version,
            models,
            event_rules,
            state_rules,
            machine,
            triggers: compiled_triggers,
            needs,
            thresholds,
            sla_kinds,
        }
    }

    pub fn model_by_id(&self, id: &str) -> Option<usize> {
        self.models.iter().position(|m| m.id == id)
    }

    pub fn model_by_key(&self, key: &str) -> Option<usize> {
        self.models.iter().position(|m| m.key == key)
    }

    /// The enabled event rules scoring events of `kind`.
    pub fn rules_for_event<'a>(
        &'a self,
        kind: &'a str,
    ) -> impl Iterator<Item = &'a EventRule> + 'a {
        self.event_rules.iter().filter(move |r| r.event == kind)
    }
}
