"""Course tooling, apart from the lessons: grading (`autograde`, `grading`; the feedback page in
`feedback`, reading and checking submissions in `submissions`, each notebook's exercise checks in
`exercises`), widgets and plot set-up
(`widgets`, `plots`), the offline guard (`offline`), notebook 00's environment check (`environment`)
and the Ding dictionary reader behind `data/de_en_pairs.tsv` (`ding`). No notebook's lesson lives
here, and no lesson module imports from here."""
