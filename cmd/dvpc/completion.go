package main

import (
	"fmt"

	"github.com/urfave/cli/v2"
)

// The completion scripts ask dvpc itself: it answers the words typed so
// far, ended by --generate-bash-completion, with the commands or flags
// that may come next, and never opens a store.
const bashCompletion = `# dvpc completion for bash: source <(dvpc completion bash)
_dvpc_complete() {
  local cur=${COMP_WORDS[COMP_CWORD]}
  local words=("${COMP_WORDS[@]:0:COMP_CWORD}")
  local opts
  if [[ $cur == -* ]]; then
    opts=$("${words[@]}" "$cur" --generate-bash-completion 2>/dev/null)
  else
    opts=$("${words[@]}" --generate-bash-completion 2>/dev/null)
  fi
  local IFS=$'\n'
  COMPREPLY=($(compgen -W "$opts" -- "$cur"))
}
complete -o bashdefault -o default -F _dvpc_complete dvpc
`

const zshCompletion = `#compdef dvpc
# dvpc completion for zsh: source <(dvpc completion zsh), after compinit
_dvpc() {
  local -a opts
  local cur=${words[-1]}
  if [[ $cur == -* ]]; then
    opts=("${(@f)$(${words[@]:0:#words[@]-1} $cur --generate-bash-completion 2>/dev/null)}")
  else
    opts=("${(@f)$(${words[@]:0:#words[@]-1} --generate-bash-completion 2>/dev/null)}")
  fi
  if [[ -n ${opts[1]} ]]; then
    _describe 'values' opts
  else
    _files
  fi
}
compdef _dvpc dvpc
`

func completionCommand(app *cli.App) *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print a shell completion script: source <(dvpc completion bash), or zsh, or dvpc completion fish | source",
		ArgsUsage: "bash|zsh|fish",
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usageError{fmt.Errorf("completion takes one shell: bash, zsh or fish")}
			}
			w := c.App.Writer
			switch c.Args().First() {
			case "bash":
				_, err := fmt.Fprint(w, bashCompletion)
				return err
			case "zsh":
				_, err := fmt.Fprint(w, zshCompletion)
				return err
			case "fish":
				s, err := app.ToFishCompletion()
				if err != nil {
					return fmt.Errorf("fish completion: %w", err)
				}
				_, err = fmt.Fprint(w, s)
				return err
			}
			return usageError{fmt.Errorf("completion %q: want bash, zsh or fish", c.Args().First())}
		},
	}
}
