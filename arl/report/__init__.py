"""`arl report`: one self-contained HTML page per lab (or several labs), built from the same data `arl plot` reads
(`series`), the experiments' refs and transcripts (`details`, `transcript`), and rendered with inline CSS, JS and SVG
(`render`, `page.js`, `page.css`). The loop refreshes `.arl/report/index.html` after each experiment (`live`)."""
