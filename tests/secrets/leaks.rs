//! One test per leak class of issue 9.
