//! Splitting a stream into branches ([`KStream::split`]), merging streams
//! ([`KStream::merge`]) and writing to a topic chosen per record
//! ([`KStream::to_topic_chooser`]).

use std::marker::PhantomData;
use std::sync::Arc;

use crate::error::Result;
use crate::streams::dsl::{FnProcessor, KStream};
use crate::streams::serde::Serde;
use crate::streams::topology::processor::{
    Data, Msg, Node, OutRecord, ProcessorContext, PunctuationType, StreamRecord, TaskContext,
};

type Predicate<K, V> = Arc<dyn Fn(&K, &V) -> bool + Send + Sync>;

/// A stream being split into branches ([`KStream::split`]): each record goes to the first
/// branch whose predicate holds for it, or to the default branch (if asked for), or nowhere.
///
/// ```
/// use riverbed::streams::{Builder, TopologyTestDriver};
///
/// let b = Builder::new("triage");
/// let branches = b
///     .stream::<String, i64>("amounts")
///     .split()
///     .branch(|_, v| *v < 0)
///     .branch(|_, v| *v >= 1000)
///     .default_branch();
/// branches[0].to("refunds");
/// branches[1].to("large");
/// branches[2].to("regular");
/// let mut driver = TopologyTestDriver::new(b.build()?)?;
/// for v in [-5i64, 10, 5000] {
///     driver.pipe_input("amounts", &"k".to_string(), &v, 0)?;
/// }
/// assert_eq!(driver.read_output::<String, i64>("large")?[0].value, 5000);
/// assert_eq!(driver.read_output::<String, i64>("regular")?.len(), 1);
/// # Ok::<(), riverbed::Error>(())
/// ```
pub struct BranchedKStream<'b, K, V> {
    stream: KStream<'b, K, V>,
    predicates: Vec<Predicate<K, V>>,
    branches: Vec<KStream<'b, K, V>>,
}

impl<K, V> std::fmt::Debug for BranchedKStream<'_, K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BranchedKStream")
            .field("node", &self.stream.node)
            .field("branches", &self.branches.len())
            .finish()
    }
}

impl<'b, K: Data, V: Data> BranchedKStream<'b, K, V> {
    /// Adds a branch taking the records for which `predicate` holds and no earlier branch's
    /// predicate does. Predicates should be pure: each branch evaluates the earlier ones again.
    pub fn branch(mut self, predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> Self {
        self.predicates.push(Arc::new(predicate));
        let preds = self.predicates.clone();
        let stream = self.stream.filter(move |k, v| match preds.split_last() {
            Some((last, earlier)) => !earlier.iter().any(|p| p(k, v)) && last(k, v),
            None => false,
        });
        self.branches.push(stream);
        self
    }

    /// The branches, in the order they were added, then the default branch: the records for
    /// which no predicate holds.
    pub fn default_branch(mut self) -> Vec<KStream<'b, K, V>> {
        let preds = self.predicates.clone();
        let rest = self
            .stream
            .filter(move |k, v| !preds.iter().any(|p| p(k, v)));
        self.branches.push(rest);
        self.branches
    }

    /// The branches, in the order they were added; records for which no predicate holds are
    /// dropped.
    pub fn no_default_branch(self) -> Vec<KStream<'b, K, V>> {
        self.branches
    }
}

impl<'b, K: Data, V: Data> KStream<'b, K, V> {
    /// Starts splitting the stream into branches; see [`BranchedKStream`].
    pub fn split(&self) -> BranchedKStream<'b, K, V> {
        BranchedKStream {
            stream: self.clone(),
            predicates: Vec::new(),
            branches: Vec::new(),
        }
    }

    /// The records of this stream and of `other`, in the order they are processed. The result
    /// counts as re-keyed if either input was (a later grouping or join repartitions it).
    ///
    /// ```
    /// use riverbed::streams::{Builder, TopologyTestDriver};
    ///
    /// let b = Builder::new("merge-app");
    /// let web = b.stream::<String, i64>("web-orders");
    /// let shop = b.stream::<String, i64>("shop-orders");
    /// web.merge(&shop).to("all-orders");
    /// let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// driver.pipe_input("web-orders", &"a".to_string(), &1i64, 0)?;
    /// driver.pipe_input("shop-orders", &"b".to_string(), &2i64, 1)?;
    /// assert_eq!(driver.read_output::<String, i64>("all-orders")?.len(), 2);
    /// # Ok::<(), riverbed::Error>(())
    /// ```
    pub fn merge(&self, other: &KStream<'b, K, V>) -> KStream<'b, K, V> {
        let b = self.builder;
        let name = b.name("KSTREAM-MERGE");
        let pass = Arc::new(
            |ctx: &mut ProcessorContext<'_, K, V>, r: StreamRecord<K, V>| {
                ctx.forward(r);
                Ok(())
            },
        );
        b.add(|t| {
            t.add_processor::<_, K, V, K, V>(
                &name,
                move || FnProcessor(Arc::clone(&pass)),
                &[&self.node, &other.node],
            )
            .map(|_| ())
        });
        KStream::new(b, name, self.key_changed || other.key_changed)
    }
}

type Chooser<K, V> = Arc<dyn Fn(&K, &V) -> String + Send + Sync>;

/// A sink writing each record to the topic its chooser picks.
struct ChooserSink<K, V> {
    chooser: Chooser<K, V>,
    _types: PhantomData<fn(K, V)>,
}

impl<K: Data + Serde, V: Data + Serde> Node for ChooserSink<K, V> {
    fn init(&mut self, _ctx: &mut TaskContext) -> Result<()> {
        Ok(())
    }

    fn process(&mut self, ctx: &mut TaskContext, msg: Msg) -> Result<()> {
        let r = msg.downcast::<K, V>()?;
        let topic = (self.chooser)(&r.key, &r.value);
        crate::validate_topic_name(&topic)?;
        ctx.outputs.push(OutRecord {
            topic: Arc::from(topic),
            key: r.key.into_nullable()?,
            value: r.value.into_nullable()?,
            timestamp: r.timestamp,
            headers: std::mem::take(&mut ctx.headers),
        });
        Ok(())
    }

    fn punctuate(&mut self, _: &mut TaskContext, _: PunctuationType, _: i64) -> Result<()> {
        Ok(())
    }
}

impl<K: Data + Serde, V: Data + Serde> KStream<'_, K, V> {
    /// Writes each record to the topic `chooser` picks for it (Kafka's `TopicNameExtractor`),
    /// partitioned by key bytes. The topics must exist by the time records are sent: a missing
    /// or invalid topic stops the application with the error (in the test driver: fails the
    /// `pipe_input`).
    ///
    /// ```
    /// use riverbed::streams::{Builder, TopologyTestDriver};
    ///
    /// let b = Builder::new("router");
    /// b.stream::<String, String>("events")
    ///     .to_topic_chooser(|_, v| format!("events-{}", if v.starts_with('!') { "alerts" } else { "rest" }));
    /// let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// driver.pipe_input("events", &"k".to_string(), &"!fire".to_string(), 0)?;
    /// assert_eq!(driver.read_output::<String, String>("events-alerts")?.len(), 1);
    /// # Ok::<(), riverbed::Error>(())
    /// ```
    pub fn to_topic_chooser(&self, chooser: impl Fn(&K, &V) -> String + Send + Sync + 'static) {
        let b = self.builder;
        let name = b.name("KSTREAM-SINK");
        let chooser: Chooser<K, V> = Arc::new(chooser);
        let factory = Arc::new(move || -> Box<dyn Node> {
            Box::new(ChooserSink {
                chooser: Arc::clone(&chooser),
                _types: PhantomData,
            })
        });
        b.add(|t| {
            t.add_dynamic_sink::<K, V>(&name, factory, &[&self.node])
                .map(|_| ())
        });
    }
}
