/**
 * The Config tab: sandkasten.yaml as text, checked as you type (YAML errors
 * with their line), saved as the change against what was loaded. The server's
 * validation error and its "needs a restart" list are shown right there.
 */
import * as React from 'react';
import { ConfigView, SandkastenApi } from './api';
import { configChange, lineOfKey, parseYaml, toYaml } from './configText';

interface Outcome {
  kind: 'saved' | 'error';
  message: string;
  line?: number | null;
}

export function ConfigEditor(props: { api: SandkastenApi }): JSX.Element {
  const { api } = props;
  const [loaded, setLoaded] = React.useState<ConfigView | null>(null);
  const [text, setText] = React.useState('');
  const [outcome, setOutcome] = React.useState<Outcome | null>(null);
  const [busy, setBusy] = React.useState(false);

  const load = React.useCallback(async () => {
    try {
      const view = await api.config();
      setLoaded(view);
      setText(toYaml(view.config));
    } catch (error) {
      setOutcome({ kind: 'error', message: String(error instanceof Error ? error.message : error) });
    }
  }, [api]);
  React.useEffect(() => void load(), [load]);

  const parsed = parseYaml(text);
  const save = async (): Promise<void> => {
    if (!loaded || !parsed.ok) {
      return;
    }
    const change = configChange(loaded.config, parsed.value);
    if (Object.keys(change).length === 0) {
      setOutcome({ kind: 'saved', message: 'Nothing changed.' });
      return;
    }
    setBusy(true);
    try {
      const result = await api.changeConfig(change);
      setLoaded({ ...loaded, config: result.config });
      setText(toYaml(result.config));
      const parts = [`Saved to ${result.path}.`];
      if (result.applied.length) {
        parts.push(`Applied now: ${result.applied.join(', ')}.`);
      }
      if (result.restart_required.length) {
        parts.push(`Needs a server restart: ${result.restart_required.join(', ')}.`);
      }
      setOutcome({ kind: 'saved', message: parts.join(' ') });
    } catch (error) {
      const message = String(error instanceof Error ? error.message : error);
      setOutcome({ kind: 'error', message, line: lineOfKey(text, message) });
    } finally {
      setBusy(false);
    }
  };

  if (!loaded) {
    return outcome ? <div className="jp-Sandkasten-error">{outcome.message}</div> : <p className="jp-Sandkasten-empty">Loading…</p>;
  }
  const markedLine = !parsed.ok ? parsed.line : outcome?.kind === 'error' ? outcome.line ?? null : null;
  return (
    <div className="jp-Sandkasten-config">
      <p className="jp-Sandkasten-path">{loaded.path ?? 'no sandkasten.yaml: built-in defaults (read only)'}</p>
      <div className="jp-Sandkasten-editor">
        <pre className="jp-Sandkasten-gutter" aria-hidden="true">
          {text.split('\n').map((_, i) => (
            <span key={i} className={i + 1 === markedLine ? 'jp-mod-error' : undefined}>
              {i + 1}
              {'\n'}
            </span>
          ))}
        </pre>
        <textarea
          className="jp-Sandkasten-yaml"
          spellCheck={false}
          value={text}
          readOnly={!loaded.writable}
          aria-label="sandkasten.yaml"
          onChange={event => {
            setText(event.target.value);
            setOutcome(null);
          }}
        />
      </div>
      {!parsed.ok && (
        <div className="jp-Sandkasten-error" role="alert">
          {parsed.line ? `line ${parsed.line}: ` : ''}
          {parsed.message}
        </div>
      )}
      {outcome && (
        <div className={outcome.kind === 'error' ? 'jp-Sandkasten-error' : 'jp-Sandkasten-saved'} role="status">
          {outcome.line ? `line ${outcome.line}: ` : ''}
          {outcome.message}
        </div>
      )}
      <div className="jp-Sandkasten-actions">
        <button className="jp-mod-styled jp-mod-accept" disabled={!loaded.writable || !parsed.ok || busy} onClick={() => void save()}>
          Save
        </button>
        <button className="jp-mod-styled" onClick={() => void load().then(() => setOutcome(null))}>
          Reload
        </button>
      </div>
    </div>
  );
}
