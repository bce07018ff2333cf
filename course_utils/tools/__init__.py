"""Course tooling, apart from the lessons: grading (`autograde`, `grading`), widgets and plot set-up
(`widgets`, `plots`) and the offline guard (`offline`). No notebook's lesson lives here."""
